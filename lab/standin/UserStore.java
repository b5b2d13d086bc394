// The stand-in's JDBC user store and its two admin services (TEST LAB ONLY).
//
// As WSO2's JDBCUserStoreManager (carbon-kernel 4.5.x) with user-mgt.xml's defaults
// (PasswordDigest SHA-256, StoreSaltedPassword true): UM_USER_PASSWORD =
// base64(SHA-256(password + salt)), salt = base64 of 16 random bytes, super tenant -1234.
//
// seed(): at start, the admin of user-mgt.xml (<AdminUser>) is added to UM_USER only when it
// has no row yet: user-mgt.xml's password is a first-start seed, later starts never touch it.
// register(): on the HTTPS transport, as the product,
//   POST /services/RemoteUserStoreManagerService  (namespace http://service.ws.um.carbon.wso2.org)
//        HTTP basic auth of an admin whose password checks against UM_USER, else 500 + SOAP fault
//        updateCredentialByAdmin(userName, newCredential) -> 202 Accepted, empty body (void)
//        authenticate(userName, credential)              -> 200 <ns:return>true|false</ns:return>
//   POST /services/AuthenticationAdmin  (namespace http://authentication.services.core.carbon.wso2.org)
//        login(username, password, remoteAddress)        -> 200 <ns:return>true|false</ns:return>
// Any other request on those paths gets the stand-in's plain answer.


import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.sql.Connection;
import java.sql.Driver;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Timestamp;
import java.util.Base64;
import java.util.Properties;

import javax.xml.XMLConstants;
import javax.xml.parsers.DocumentBuilderFactory;

import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;

class UserStore {

    static final int SUPER_TENANT = -1234;
    static final String UM_NS = "http://service.ws.um.carbon.wso2.org";
    static final String AUTH_NS = "http://authentication.services.core.carbon.wso2.org";
    static final String SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/";
    static final SecureRandom RANDOM = new SecureRandom();

    static String adminUser;
    static StandIn.DS ds;
    static Driver driver;

    // ------------------------------------------------------------------ store

    static Connection connect() throws SQLException {
        Properties p = new Properties();
        if (ds.user != null) p.setProperty("user", ds.user);
        if (ds.password != null) p.setProperty("password", ds.password);
        p.setProperty("connectTimeout", "5000");
        Connection c = driver.connect(ds.url, p);
        if (c == null) throw new SQLException("driver returned no connection for " + ds.url);
        return c;
    }

    static String digest(String password, String salt) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        String s = salt == null ? password : password + salt;
        return Base64.getEncoder().encodeToString(md.digest(s.getBytes(StandardCharsets.UTF_8)));
    }

    static String newSalt() {
        byte[] b = new byte[16];
        RANDOM.nextBytes(b);
        return Base64.getEncoder().encodeToString(b);
    }

    /** Does `password` check against the user's row? */
    static boolean authenticate(String user, String password) {
        if (user == null || password == null) return false;
        try (Connection c = connect();
             PreparedStatement st = c.prepareStatement("SELECT UM_USER_PASSWORD, UM_SALT_VALUE FROM UM_USER "
                     + "WHERE UM_USER_NAME=? AND UM_TENANT_ID=?")) {
            st.setString(1, user);
            st.setInt(2, SUPER_TENANT);
            try (ResultSet rs = st.executeQuery()) {
                if (!rs.next()) return false;
                return MessageDigest.isEqual(rs.getString(1).getBytes(StandardCharsets.UTF_8),
                        digest(password, rs.getString(2)).getBytes(StandardCharsets.UTF_8));
            }
        } catch (Exception e) {
            StandIn.log("ERROR", "org.wso2.carbon.user.core.jdbc.JDBCUserStoreManager", "authentication failure: " + e);
            return false;
        }
    }

    static void updateCredential(String user, String password) throws Exception {
        String salt = newSalt();
        try (Connection c = connect();
             PreparedStatement st = c.prepareStatement("UPDATE UM_USER SET UM_USER_PASSWORD=?, UM_SALT_VALUE=?, "
                     + "UM_REQUIRE_CHANGE=0, UM_CHANGED_TIME=? WHERE UM_USER_NAME=? AND UM_TENANT_ID=?")) {
            c.setAutoCommit(true);
            st.setString(1, digest(password, salt));
            st.setString(2, salt);
            st.setTimestamp(3, new Timestamp(System.currentTimeMillis()));
            st.setString(4, user);
            st.setInt(5, SUPER_TENANT);
            if (st.executeUpdate() != 1) throw new SQLException("user " + user + " does not exist");
        }
    }

    /** First start: add the admin of user-mgt.xml when UM_USER has no row for it. */
    static void seed() {
        if (!StandIn.ERRORS.isEmpty()) return;  // the user store datasource failed its check
        Document d = StandIn.parse("user-mgt.xml");
        if (d == null) return;
        Element admin = StandIn.child(StandIn.child(StandIn.child(d.getDocumentElement(), "Realm"),
                "Configuration"), "AdminUser");
        adminUser = StandIn.path(admin, "UserName");
        String seedPassword = StandIn.secret(admin, "Password");
        if (adminUser == null || adminUser.isEmpty() || seedPassword == null) {
            StandIn.error("conf/user-mgt.xml: <Realm><Configuration><AdminUser> needs <UserName> and <Password>");
            return;
        }
        StandIn.SECRETS.add(seedPassword);
        ds = StandIn.DATASOURCES.get("WSO2_USER_DB");
        driver = ds == null ? null : StandIn.loadDriver(ds);
        if (driver == null) return;
        String cat = "org.wso2.carbon.user.core.jdbc.JDBCUserStoreManager";
        try (Connection c = connect()) {
            c.setAutoCommit(true);
            try (PreparedStatement st = c.prepareStatement(
                    "SELECT COUNT(*) FROM UM_USER WHERE UM_USER_NAME=? AND UM_TENANT_ID=?")) {
                st.setString(1, adminUser);
                st.setInt(2, SUPER_TENANT);
                try (ResultSet rs = st.executeQuery()) {
                    rs.next();
                    if (rs.getInt(1) > 0) {
                        StandIn.info(cat, "Admin user " + adminUser + " exists in the user store: user-mgt.xml's "
                                + "password is not applied (first-start seed only)");
                        return;
                    }
                }
            }
            String salt = newSalt();
            try (PreparedStatement st = c.prepareStatement("INSERT INTO UM_USER (UM_USER_NAME, UM_USER_PASSWORD, "
                    + "UM_SALT_VALUE, UM_REQUIRE_CHANGE, UM_CHANGED_TIME, UM_TENANT_ID) VALUES (?,?,?,0,?,?)")) {
                st.setString(1, adminUser);
                st.setString(2, digest(seedPassword, salt));
                st.setString(3, salt);
                st.setTimestamp(4, new Timestamp(System.currentTimeMillis()));
                st.setInt(5, SUPER_TENANT);
                st.executeUpdate();
                StandIn.info(cat, "Admin user " + adminUser + " added to the user store from user-mgt.xml");
            } catch (SQLException e) {
                if (e.getSQLState() == null || !e.getSQLState().startsWith("23")) throw e;
                StandIn.info(cat, "Admin user " + adminUser + " was added by another node");
            }
        } catch (Exception e) {
            StandIn.error("user store (datasource WSO2_USER_DB): cannot add the admin user: " + e);
        }
    }

    // ------------------------------------------------------------------ SOAP

    /** Serve the request if it is for one of the admin services (HTTPS only); true if it was. */
    static boolean route(Exchange ex) {
        String path = ex.getRequestURI().getPath();
        if (driver == null || path == null) return false;
        if (path.startsWith("/services/RemoteUserStoreManagerService")) {
            serve(ex, true);
        } else if (path.startsWith("/services/AuthenticationAdmin")) {
            serve(ex, false);
        } else {
            return false;
        }
        return true;
    }

    static Element operation(byte[] body) throws Exception {
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setNamespaceAware(true);
        f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        f.setFeature(XMLConstants.FEATURE_SECURE_PROCESSING, true);
        Document d = f.newDocumentBuilder().parse(new ByteArrayInputStream(body));
        Element b = StandIn.child(d.getDocumentElement(), "Body");
        if (b == null) return null;
        for (Node n = b.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n instanceof Element) return (Element) n;
        }
        return null;
    }

    static String arg(Element op, String name) {
        Element e = StandIn.child(op, name);
        return e == null ? null : e.getTextContent();
    }

    static String esc(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;");
    }

    static void send(Exchange ex, int code, String xml) throws Exception {
        if (xml == null) {
            ex.sendResponseHeaders(code, -1);
            return;
        }
        byte[] b = xml.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", "text/xml; charset=UTF-8");
        ex.sendResponseHeaders(code, b.length);
        try (OutputStream os = ex.getResponseBody()) {
            os.write(b);
        }
    }

    static String envelope(String body) {
        return "<?xml version='1.0' encoding='UTF-8'?><soapenv:Envelope xmlns:soapenv=\"" + SOAP_NS + "\">"
                + "<soapenv:Body>" + body + "</soapenv:Body></soapenv:Envelope>";
    }

    static void fault(Exchange ex, String msg) throws Exception {
        send(ex, 500, envelope("<soapenv:Fault><faultcode>soapenv:Server</faultcode><faultstring>" + esc(msg)
                + "</faultstring><detail /></soapenv:Fault>"));
    }

    static void result(Exchange ex, String ns, String op, boolean value) throws Exception {
        send(ex, 200, envelope("<ns:" + op + "Response xmlns:ns=\"" + ns + "\"><ns:return>" + value
                + "</ns:return></ns:" + op + "Response>"));
    }

    /** The admin named by the request's HTTP basic auth, or null when it does not check out. */
    static String basicAdmin(Exchange ex) {
        String h = ex.getRequestHeaders().getFirst("Authorization");
        if (h == null || !h.regionMatches(true, 0, "Basic ", 0, 6)) return null;
        String up;
        try {
            up = new String(Base64.getDecoder().decode(h.substring(6).trim()), StandardCharsets.UTF_8);
        } catch (IllegalArgumentException e) {
            return null;
        }
        int i = up.indexOf(':');
        if (i < 0) return null;
        String user = up.substring(0, i);
        return user.equals(adminUser) && authenticate(user, up.substring(i + 1)) ? user : null;
    }

    static void serve(Exchange ex, boolean userStore) {
        String cat = userStore ? "org.wso2.carbon.um.ws.service.UserStoreManagerService"
                : "org.wso2.carbon.core.services.authentication.AuthenticationAdmin";
        try {
            if (!"POST".equals(ex.getRequestMethod())) {
                StandIn.handle(ex, "https");
                return;
            }
            byte[] body;
            try (InputStream in = ex.getRequestBody()) {
                body = in.readNBytes(1 << 20);
            }
            Element op;
            try {
                op = operation(body);
            } catch (Exception e) {
                fault(ex, "Error in the SOAP request: " + e.getMessage());
                return;
            }
            String name = op == null ? "" : StandIn.localName(op);
            if (!userStore && "login".equals(name)) {
                String user = arg(op, "username");
                boolean ok = authenticate(user, arg(op, "password"));
                String who = "'" + user + "@carbon.super [" + SUPER_TENANT + "]'";
                if (ok) {
                    ex.getResponseHeaders().add("Set-Cookie", "JSESSIONID=" + Long.toHexString(RANDOM.nextLong())
                            + "; Path=/; Secure; HttpOnly");
                    StandIn.info("org.wso2.carbon.core.services.util.CarbonAuthenticationUtil", who + " logged in");
                } else {
                    StandIn.log("WARN", "org.wso2.carbon.core.services.util.CarbonAuthenticationUtil",
                            "Failed Administrator login attempt " + who);
                }
                result(ex, AUTH_NS, "login", ok);
                return;
            }
            if (!userStore) {
                fault(ex, "The endpoint reference (EPR) for the Operation not found is /services/AuthenticationAdmin "
                        + "and the WSA Action = urn:" + name);
                return;
            }
            String admin = basicAdmin(ex);
            if (admin == null) {
                StandIn.log("WARN", "org.wso2.carbon.server.admin.module.handler.AuthenticationHandler",
                        "Illegal access attempt at /services/RemoteUserStoreManagerService from " + ex.getRemoteAddress());
                fault(ex, "Access Denied. Authentication failed - Invalid credentials provided.");
                return;
            }
            if ("updateCredentialByAdmin".equals(name)) {
                String user = arg(op, "userName"), pw = arg(op, "newCredential");
                if (user == null || pw == null || pw.isEmpty()) {
                    fault(ex, "Error occurred while updating credential: userName and newCredential are required");
                    return;
                }
                try {
                    updateCredential(user, pw);
                } catch (Exception e) {
                    fault(ex, "Error occurred while updating credential of " + user + ": " + e.getMessage());
                    return;
                }
                StandIn.info(cat, "Credential of user " + user + " updated by " + admin);
                send(ex, 202, null);  // a void operation: Axis2 answers 202 Accepted, no body
            } else if ("authenticate".equals(name)) {
                result(ex, UM_NS, "authenticate", authenticate(arg(op, "userName"), arg(op, "credential")));
            } else {
                fault(ex, "The endpoint reference (EPR) for the Operation not found is "
                        + "/services/RemoteUserStoreManagerService and the WSA Action = urn:" + name);
            }
        } catch (Exception e) {
            // client went away
        } finally {
            ex.close();
        }
    }
}
