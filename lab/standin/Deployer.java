// The stand-in's hot deployer (TEST LAB ONLY): what Axis2's DeploymentEngine does for the BPS
// profile's four artifact folders under repository/deployment/server/, in the product's words.
//
// Every DeploymentUpdateInterval (carbon.xml, the product's 15 s; the lab sets a shorter
// deployment.interval.ms in bin/standin.properties) it lists bpel/*.zip, humantasks/*.zip,
// bpmn/*.bar and carbonapps/*.car. A new or changed file (size, mtime) is deployed: the archive
// must be a whole zip (a half-written copy is not: its central directory is missing) holding
// its descriptor (deploy.xml, htconfig.xml, a .bpmn/.bpmn20.xml, artifacts.xml). A removed file
// is undeployed. Versions live where the product keeps them, in the shared databases: BPEL in
// ODE's STORE_VERSIONS/STORE_DU, HumanTask in HT_VERSIONS/HT_DEPLOYMENT_UNIT (BPS_DS), BPMN in
// Activiti's ACT_RE_DEPLOYMENT (ACTIVITI_DB). The node whose registry mount is writable (node 1)
// creates a version; a node with a read-only registry only loads the version node 1 created,
// and fails the artifact when there is none (the product warns "deploy ... in Master node
// first"), so a node deployed before node 1 is caught.
//
// Log lines: the product's own where known ("Deploying BPEL archive: X", "Deploying HumanTask
// archive [ X ]", "Deploying BPMN archive X for tenant: -1234", "Successfully Deployed Carbon
// Application : N_V{super-tenant}", "Error deploying HumanTask package : X", Axis2's "The X
// service, which is not valid, caused ..."). A BPEL/HumanTask/BPMN success is one line,
// "Successfully deployed <kind> ... from X", the stand-in's (the product says it over several).
import java.io.InputStream;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.sql.Connection;
import java.sql.Driver;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.Timestamp;
import java.util.Enumeration;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Properties;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;

import javax.xml.parsers.DocumentBuilderFactory;

import org.w3c.dom.Document;
import org.w3c.dom.Element;

public class Deployer {

    static final String[][] KINDS = {  // folder, extension, what it is
            {"bpel", ".zip", "BPEL"}, {"humantasks", ".zip", "HumanTask"},
            {"bpmn", ".bar", "BPMN"}, {"carbonapps", ".car", "Carbon Application"}};
    static final String AXIS2 = "org.apache.axis2.deployment.DeploymentEngine";
    static final Map<Path, String> seen = new HashMap<>();  // file -> "size mtime"
    static final Map<Path, String> carNames = new HashMap<>();  // .car -> name_version
    static boolean master;

    static long intervalMs() {
        long carbon = 15;
        Document d = StandIn.parse("carbon.xml");
        if (d != null) {
            for (Element e : StandIn.descendants(d, "DeploymentUpdateInterval")) {
                try {
                    carbon = Long.parseLong(StandIn.text(e).trim());
                } catch (NumberFormatException x) {
                    // the product's default
                }
            }
        }
        Properties p = new Properties();
        try (InputStream in = Files.newInputStream(StandIn.carbonHome.resolve("bin/standin.properties"))) {
            p.load(in);
        } catch (Exception e) {
            // no lab override
        }
        String v = p.getProperty("deployment.interval.ms");
        return v != null ? Long.parseLong(v.trim()) : carbon * 1000;
    }

    static void start() {
        master = !registryReadOnly();
        long every = intervalMs();
        StandIn.info(AXIS2, "hot deployment: polling repository/deployment/server every " + every + " ms ("
                + (master ? "registry writable: this node versions packages" : "registry read-only: loads versions") + ")");
        Thread t = new Thread(() -> {
            while (true) {
                try {
                    scan();
                } catch (Throwable e) {
                    StandIn.log("ERROR", AXIS2, "deployment scan failed: " + e);
                }
                try {
                    Thread.sleep(every);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }, "hot-deployer");
        t.setDaemon(true);
        t.start();
    }

    static boolean registryReadOnly() {
        Document d = StandIn.parse("registry.xml");
        if (d == null) return false;
        for (Element r : StandIn.descendants(d, "remoteInstance")) {
            if ("true".equals(StandIn.path(r, "readOnly"))) return true;
        }
        return false;
    }

    static void scan() throws Exception {
        Path server = StandIn.carbonHome.resolve("repository/deployment/server");
        Map<Path, String> now = new LinkedHashMap<>();
        Map<Path, String[]> kindOf = new HashMap<>();
        for (String[] k : KINDS) {
            Path dir = server.resolve(k[0]);
            if (!Files.isDirectory(dir, LinkOption.NOFOLLOW_LINKS)) continue;
            try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir)) {
                for (Path f : ds) {
                    String n = f.getFileName().toString();
                    if (n.startsWith(".") || !n.endsWith(k[1]) || !Files.isRegularFile(f, LinkOption.NOFOLLOW_LINKS)) continue;
                    now.put(f, Files.size(f) + " " + Files.getLastModifiedTime(f).toMillis());
                    kindOf.put(f, k);
                }
            }
        }
        for (Path f : new java.util.ArrayList<>(seen.keySet())) {
            if (!now.containsKey(f)) {
                seen.remove(f);
                undeploy(f);
            }
        }
        for (Map.Entry<Path, String> e : now.entrySet()) {
            if (e.getValue().equals(seen.get(e.getKey()))) continue;
            boolean update = seen.containsKey(e.getKey());
            seen.put(e.getKey(), e.getValue());
            deploy(e.getKey(), kindOf.get(e.getKey()), update);
        }
    }

    static String stem(Path f) {
        String n = f.getFileName().toString();
        return n.substring(0, n.lastIndexOf('.'));
    }

    static void fail(String cat, Path f, String first, String why) {
        StandIn.log("ERROR", cat, first);
        StandIn.log("ERROR", AXIS2, "The " + f.getFileName() + " service, which is not valid, caused " + why);
    }

    static void deploy(Path f, String[] kind, boolean update) {
        String name = f.getFileName().toString(), pkg = stem(f);
        switch (kind[0]) {
            case "bpel": {
                String cat = "org.wso2.carbon.bpel.core.ode.integration.store.TenantProcessStoreImpl";
                StandIn.info(cat, "Deploying BPEL archive: " + name);
                String bad = check(f, "deploy.xml", true);
                if (bad == null) bad = processesDefined(f);
                if (bad != null) {
                    fail(cat, f, "Error extracting BPEL archive " + f + ". " + bad, bad);
                    return;
                }
                try {
                    long v = bpelVersion(pkg, update);
                    StandIn.info(cat, "Successfully deployed BPEL package " + pkg + "-" + v + " from " + name);
                } catch (Exception e) {
                    fail(cat, f, "Error deploying BPEL package " + name + ": " + e.getMessage(), e.getMessage());
                }
                return;
            }
            case "humantasks": {
                String cat = "org.wso2.carbon.humantask.core.deployment.HumanTaskDeployer";
                StandIn.info(cat, "Deploying HumanTask archive [ " + name + " ]");
                String bad = check(f, "htconfig.xml", true);
                if (bad == null) {
                    try {
                        long v = htVersion(pkg, md5(f));
                        StandIn.info(cat, "Successfully deployed HumanTask package " + pkg + "-" + v + " from " + name);
                        return;
                    } catch (Exception e) {
                        bad = e.getMessage();
                    }
                }
                fail(cat, f, "Error deploying HumanTask package : " + name + " (" + bad + ")", bad);
                return;
            }
            case "bpmn": {
                String cat = "org.wso2.carbon.bpmn.core.deployment.BPMNDeployer";
                StandIn.info(cat, "Deploying BPMN archive " + name + " for tenant: -1234");
                String bad = check(f, null, false);
                if (bad == null) {
                    try {
                        String id = bpmnDeployment(pkg, update);
                        StandIn.info(cat, "Successfully deployed BPMN archive " + name + " as deployment " + id);
                        return;
                    } catch (Exception e) {
                        bad = e.getMessage();
                    }
                }
                fail(cat, f, "Failed to deploy the archive: " + f + " (" + bad + ")", bad);
                return;
            }
            default: {
                String cat = "org.wso2.carbon.application.deployer.internal.ApplicationManager";
                StandIn.info(cat, "Deploying Carbon Application : " + name + "...");
                String bad = check(f, "artifacts.xml", true);
                String app = bad == null ? carName(f) : null;
                if (bad == null && app == null) bad = "artifacts.xml has no <artifact type=\"carbon/application\"> with a name and version";
                if (bad != null) {
                    fail(cat, f, "Error occurred while deploying the Carbon application: " + name + ". " + bad, bad);
                    return;
                }
                carNames.put(f, app);
                StandIn.info(cat, "Successfully Deployed Carbon Application : " + app + "{super-tenant}");
            }
        }
    }

    static void undeploy(Path f) {
        String name = f.getFileName().toString(), pkg = stem(f), dir = f.getParent().getFileName().toString();
        try {
            switch (dir) {
                case "bpel":
                    StandIn.info("org.wso2.carbon.bpel.core.ode.integration.store.TenantProcessStoreImpl",
                            "Undeploying BPEL package " + pkg + ". Deleting BPEL archive " + f + "....");
                    if (master) sql("BPS_DS", "DELETE FROM STORE_DU WHERE NAME LIKE ?", pkg + "-%");
                    return;
                case "humantasks":
                    StandIn.info("org.wso2.carbon.humantask.core.store.HumanTaskStore",
                            "UnDeploying HumanTask package " + pkg + ". Deleting HumanTask archive " + name + "....");
                    if (master) sql("BPS_DS", "UPDATE HT_DEPLOYMENT_UNIT SET STATUS='UNDEPLOYED' WHERE PACKAGE_NAME=?", pkg);
                    return;
                case "bpmn":
                    StandIn.info("org.wso2.carbon.bpmn.core.deployment.BPMNDeployer",
                            "Undeploying BPMN archive " + f + " for tenant: -1234");
                    return;
                default:
                    StandIn.info("org.wso2.carbon.application.deployer.internal.ApplicationManager",
                            "Undeploying Carbon Application : " + carNames.getOrDefault(f, pkg) + "{super-tenant} (" + name + ")");
                    carNames.remove(f);
            }
        } catch (Exception e) {
            StandIn.log("ERROR", AXIS2, "Undeployment of " + name + " failed: " + e.getMessage());
        }
    }

    // null when the archive is a whole zip holding the descriptor (null: any .bpmn/.bpmn20.xml)
    static String check(Path f, String descriptor, boolean atRoot) {
        try (ZipFile z = new ZipFile(f.toFile())) {
            boolean found = false;
            Enumeration<? extends ZipEntry> en = z.entries();
            while (en.hasMoreElements()) {
                ZipEntry e = en.nextElement();
                try (InputStream in = z.getInputStream(e)) {  // reads it all: checks the CRC
                    in.transferTo(java.io.OutputStream.nullOutputStream());
                }
                String n = e.getName();
                if (descriptor == null ? (n.endsWith(".bpmn") || n.endsWith(".bpmn20.xml")) : n.equals(descriptor)) {
                    found = true;
                    if (descriptor != null) {
                        try (InputStream in = z.getInputStream(e)) {
                            xml(in);
                        } catch (Exception x) {
                            return descriptor + " is not well-formed XML: " + x.getMessage();
                        }
                    }
                }
            }
            if (!found) return descriptor == null ? "no process definition (.bpmn or .bpmn20.xml) in the archive"
                    : descriptor + " not found in the archive";
            return null;
        } catch (Exception e) {
            return "not a valid archive (" + e.getClass().getSimpleName() + ": " + e.getMessage()
                    + "): incomplete or corrupt file";
        }
    }

    // ODE compiles each <process name="p:N"> of deploy.xml from a .bpel in the package
    static String processesDefined(Path f) {
        try (ZipFile z = new ZipFile(f.toFile())) {
            StringBuilder bpel = new StringBuilder();
            Enumeration<? extends ZipEntry> en = z.entries();
            while (en.hasMoreElements()) {
                ZipEntry e = en.nextElement();
                if (e.getName().endsWith(".bpel")) {
                    try (InputStream in = z.getInputStream(e)) {
                        bpel.append(new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8));
                    }
                }
            }
            Document d;
            try (InputStream in = z.getInputStream(z.getEntry("deploy.xml"))) {
                d = xml(in);
            }
            for (Element p : StandIn.descendants(d, "process")) {
                String n = p.getAttribute("name");
                n = n.substring(n.indexOf(':') + 1);
                if (!java.util.regex.Pattern.compile("<(\\w+:)?process[^>]*\\sname=\"" + java.util.regex.Pattern.quote(n) + "\"")
                        .matcher(bpel).find())
                    return "Process definition for " + n + " not found: no .bpel file in the package defines it";
            }
            return null;
        } catch (Exception e) {
            return "cannot read the package: " + e.getMessage();
        }
    }

    static String carName(Path f) {
        try (ZipFile z = new ZipFile(f.toFile()); InputStream in = z.getInputStream(z.getEntry("artifacts.xml"))) {
            Document d = xml(in);
            for (Element a : StandIn.descendants(d, "artifact")) {
                if (!a.getAttribute("name").isEmpty() && !a.getAttribute("version").isEmpty())
                    return a.getAttribute("name") + "_" + a.getAttribute("version");
            }
        } catch (Exception e) {
            return null;
        }
        return null;
    }

    static Document xml(InputStream in) throws Exception {
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setNamespaceAware(true);  // StandIn.descendants matches local names in any namespace
        return f.newDocumentBuilder().parse(in);
    }

    static String md5(Path f) throws Exception {
        byte[] h = MessageDigest.getInstance("MD5").digest(Files.readAllBytes(f));
        StringBuilder sb = new StringBuilder();
        for (byte b : h) sb.append(String.format("%02x", b));
        return sb.toString();
    }

    // ------------------------------------------------------------------ the shared databases

    static Connection connect(String dsName) throws Exception {
        StandIn.DS ds = StandIn.DATASOURCES.get(dsName);
        Driver drv = StandIn.loadDriver(ds);
        if (drv == null) throw new Exception("no JDBC driver for " + dsName);
        Properties p = new Properties();
        p.setProperty("user", ds.user);
        p.setProperty("password", ds.password == null ? "" : ds.password);
        return drv.connect(ds.url, p);
    }

    static long one(Connection c, String q, Object... args) throws Exception {
        try (PreparedStatement st = c.prepareStatement(q)) {
            for (int i = 0; i < args.length; i++) st.setObject(i + 1, args[i]);
            try (ResultSet rs = st.executeQuery()) {
                return rs.next() ? rs.getLong(1) : -1;
            }
        }
    }

    static void sql(String ds, String q, Object... args) throws Exception {
        try (Connection c = connect(ds)) {
            exec(c, q, args);
        }
    }

    static void exec(Connection c, String q, Object... args) throws Exception {
        try (PreparedStatement st = c.prepareStatement(q)) {
            for (int i = 0; i < args.length; i++) st.setObject(i + 1, args[i]);
            st.executeUpdate();
        }
    }

    static final String SLAVE = "This node seems to be a slave, since the configuration registry is in read-only mode, "
            + "hence processes cannot be directly deployed in this node. Please deploy the process in Master node first.";

    // ODE: one sequence for all packages (STORE_VERSIONS), a DU per version named <pkg>-<version>
    static long bpelVersion(String pkg, boolean update) throws Exception {
        try (Connection c = connect("BPS_DS")) {
            long last = one(c, "SELECT MAX(CAST(SUBSTRING(NAME, ?) AS UNSIGNED)) FROM STORE_DU WHERE NAME LIKE ?",
                    pkg.length() + 2, pkg + "-%");
            if (!master) {
                if (last <= 0) throw new Exception(SLAVE);
                return last;
            }
            if (last > 0 && !update) return last;  // a reload (at start): the version it has
            long v = Math.max(one(c, "SELECT MAX(VERSION) FROM STORE_VERSIONS"), 0) + 1;
            exec(c, "DELETE FROM STORE_VERSIONS");
            exec(c, "INSERT INTO STORE_VERSIONS (id, VERSION) VALUES (1, ?)", v);
            exec(c, "INSERT INTO STORE_DU (NAME, DEPLOYDT, DEPLOYER, DIR) VALUES (?, ?, ?, ?)",
                    pkg + "-" + v, new Timestamp(System.currentTimeMillis()), StandIn.nodeName, pkg + "-" + v);
            return v;
        }
    }

    // HumanTask: versions by the archive's checksum (HT_DEPLOYMENT_UNIT.CHECKSUM)
    static long htVersion(String pkg, String md5) throws Exception {
        try (Connection c = connect("BPS_DS")) {
            long have = one(c, "SELECT MAX(VERSION) FROM HT_DEPLOYMENT_UNIT WHERE PACKAGE_NAME=? AND CHECKSUM=?", pkg, md5);
            if (have > 0) return have;
            if (!master) throw new Exception(SLAVE);
            long v = Math.max(one(c, "SELECT MAX(TASK_VERSION) FROM HT_VERSIONS"), 0) + 1;
            long id = Math.max(one(c, "SELECT MAX(id) FROM HT_DEPLOYMENT_UNIT"), 0) + 1;
            exec(c, "DELETE FROM HT_VERSIONS");
            exec(c, "INSERT INTO HT_VERSIONS (id, TASK_VERSION) VALUES (1, ?)", v);
            exec(c, "INSERT INTO HT_DEPLOYMENT_UNIT (id, CHECKSUM, DEPLOYED_ON, DEPLOY_DIR, NAME, PACKAGE_NAME, STATUS, TENANT_ID, VERSION)"
                    + " VALUES (?, ?, ?, ?, ?, ?, 'ACTIVE', -1234, ?)", id, md5, new Timestamp(System.currentTimeMillis()),
                    pkg + "-" + v, pkg + "-" + v, pkg, v);
            return v;
        }
    }

    // Activiti: one ACT_RE_DEPLOYMENT row per deployment of the archive
    static String bpmnDeployment(String name, boolean update) throws Exception {
        try (Connection c = connect("ACTIVITI_DB")) {
            long last = one(c, "SELECT MAX(CAST(ID_ AS UNSIGNED)) FROM ACT_RE_DEPLOYMENT WHERE NAME_=?", name);
            if (!master) {
                if (last <= 0) throw new Exception("no deployment of " + name + " in the Activiti database: " + SLAVE);
                return String.valueOf(last);
            }
            if (last > 0 && !update) return String.valueOf(last);
            long id = Math.max(one(c, "SELECT MAX(CAST(ID_ AS UNSIGNED)) FROM ACT_RE_DEPLOYMENT"), 0) + 1;
            exec(c, "INSERT INTO ACT_RE_DEPLOYMENT (ID_, NAME_, TENANT_ID_, DEPLOY_TIME_) VALUES (?, ?, '-1234', ?)",
                    String.valueOf(id), name, new Timestamp(System.currentTimeMillis()));
            return String.valueOf(id);
        }
    }
}
