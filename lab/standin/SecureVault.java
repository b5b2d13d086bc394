// Stand-in for WSO2 Secure Vault as Carbon 4.5 resolves it at start (TEST LAB ONLY; written
// from how the product behaves, no WSO2 code copied):
// * conf/security/secret-conf.properties configures it (carbon.secretProvider, the file secret
//   repository, the identity keystore); without it, svns:secretAlias is ignored and the
//   element's own text is used;
// * the keystore password: DefaultSecretCallbackHandler reads the first line of
//   <carbon.home>/password-tmp, overwrites that file and deletes it (password-persist is read
//   and kept; no file: the product prompts on a console, which a service has not);
// * the keystore opens with it, else the product's "IOError loading keyStore from ' <path> ' ";
// * cipher-text.properties: each value base64, RSA (RSA/ECB/PKCS1Padding) with the private key;
//   a value that does not decrypt resolves to nothing, and an alias without a secret resolves
//   to the alias itself (FileBaseSecretRepository.getSecret), so the login then fails.

import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.security.Key;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import javax.crypto.Cipher;

import org.w3c.dom.Element;

final class SecureVault {
    static final String NS = "http://org.wso2.securevault/configuration";
    static final String DEFAULT_CALLBACK = "org.wso2.carbon.securevault.DefaultSecretCallbackHandler";
    static boolean configured;
    static final Map<String, String> SECRETS = new HashMap<>();

    private SecureVault() {
    }

    static Properties load(Path p) {
        Properties props = new Properties();
        try (InputStream in = Files.newInputStream(p)) {
            props.load(in);
        } catch (Exception e) {
            // missing or unreadable: empty, as MiscellaneousUtil.loadProperties
        }
        return props;
    }

    static Path resolve(String loc) {
        Path p = Paths.get(loc);
        return p.isAbsolute() ? p : StandIn.carbonHome.resolve(loc);
    }

    /** DefaultSecretCallbackHandler: password, then password-tmp (deleted), then password-persist. */
    static String callbackPassword() {
        for (String name : new String[]{"password", "password-tmp", "password-persist"}) {
            Path f = StandIn.carbonHome.resolve(name);
            if (!Files.isRegularFile(f)) continue;
            String pw = null;
            try {
                List<String> lines = Files.readAllLines(f, StandardCharsets.UTF_8);
                pw = lines.isEmpty() ? null : lines.get(0);
            } catch (Exception e) {
                StandIn.log("ERROR", "org.wso2.carbon.securevault.DefaultSecretCallbackHandler",
                        "Error reading password from text file " + e);
            }
            if (!name.equals("password-persist")) {
                try (OutputStream o = Files.newOutputStream(f)) {
                    o.write("!@#$%^&*()SDFGHJZXCVBNM!@#$%^&*".getBytes(StandardCharsets.UTF_8));
                } catch (Exception e) {
                    // the delete below still runs
                }
                try {
                    Files.delete(f);
                } catch (Exception e) {
                    StandIn.error("Error deleting Password config File");
                }
            }
            return pw;
        }
        return null;
    }

    static void init() {
        Properties conf = load(StandIn.conf.resolve("security/secret-conf.properties"));
        if (conf.getProperty("carbon.secretProvider") == null) return;  // not configured
        configured = true;
        String loc = conf.getProperty("keystore.identity.location");
        String type = conf.getProperty("keystore.identity.type", "JKS");
        String alias = conf.getProperty("keystore.identity.alias");
        String storePass = conf.getProperty("keystore.identity.store.password");
        String keyPass = conf.getProperty("keystore.identity.key.password");
        if (DEFAULT_CALLBACK.equals(conf.getProperty("keystore.identity.store.secretProvider"))) {
            storePass = callbackPassword();
            keyPass = storePass;  // same key and store password (no -Dkey.password=true)
            if (storePass == null) {
                // the product would prompt "[Enter KeyStore and Private Key Password :]"
                StandIn.error("Secure Vault: no " + StandIn.carbonHome.resolve("password-tmp")
                        + " and no console to ask for the KeyStore and Private Key Password");
                return;
            }
        }
        if (storePass != null) StandIn.SECRETS.add(storePass);
        Path store = resolve(loc == null ? "" : loc);
        KeyStore ks;
        try (InputStream in = Files.newInputStream(store)) {
            ks = KeyStore.getInstance(type);
            ks.load(in, storePass == null ? null : storePass.toCharArray());
        } catch (java.io.IOException e) {
            String msg = "IOError loading keyStore from ' " + store + " ' " + e;
            StandIn.ERRORS.add(msg);
            StandIn.log("ERROR", "org.wso2.securevault.keystore.IdentityKeyStoreWrapper", msg);
            return;
        } catch (Exception e) {
            String msg = "Error loading keyStore from ' " + store + " ' " + e;
            StandIn.ERRORS.add(msg);
            StandIn.log("ERROR", "org.wso2.securevault.keystore.IdentityKeyStoreWrapper", msg);
            return;
        }
        PrivateKey pk;
        try {
            Key k = ks.getKey(alias, (keyPass == null ? "" : keyPass).toCharArray());
            if (!(k instanceof PrivateKey)) throw new IllegalStateException("no private key " + alias);
            pk = (PrivateKey) k;
        } catch (Exception e) {
            StandIn.error("Error loading private key from identity keystore: " + e);
            return;
        }
        String file = conf.getProperty("secretRepositories.file.location", "cipher-text.properties");
        Properties cipherText = load(resolve(file));
        for (String name : cipherText.stringPropertyNames()) {
            String v = cipherText.getProperty(name).trim();
            if (v.isEmpty()) continue;
            String plain = "";
            try {
                Cipher c = Cipher.getInstance("RSA");
                c.init(Cipher.DECRYPT_MODE, pk);
                plain = new String(c.doFinal(Base64.getMimeDecoder().decode(v)), StandardCharsets.UTF_8);
            } catch (Exception e) {
                // BaseCipher's CipherOutputStream swallows a bad padding: an empty secret
            }
            SECRETS.put(name, plain);
            if (!plain.isEmpty()) StandIn.SECRETS.add(plain);
        }
        StandIn.info("org.wso2.carbon.securevault.SecretManagerInitializer",
                "Secure Vault: " + SECRETS.size() + " secret(s) from " + resolve(file));
    }

    /** The value of a secured element: its alias resolved, else its own text. */
    static String value(Element e) {
        if (e == null) return null;
        String alias = e.getAttributeNS(NS, "secretAlias");
        if (alias == null || alias.isEmpty() || !configured) return StandIn.text(e);
        String s = SECRETS.get(alias);
        return s == null || s.isEmpty() ? alias : s;
    }

    /** The value of a secured attribute (catalina-server.xml keystorePass). */
    static String attribute(Element e, String attr) {
        if (e == null) return null;
        String alias = e.getAttributeNS(NS, "secretAlias");
        if (alias == null || alias.isEmpty() || !configured) return e.getAttribute(attr);
        String s = SECRETS.get(alias);
        return s == null || s.isEmpty() ? alias : s;
    }
}
