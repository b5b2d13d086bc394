// org.wso2.carbon.bootstrap.Bootstrap for the lab stand-in (TEST LAB ONLY).
//
// The product's own bin/wso2server.sh (EI 6.6.0, verbatim) starts this class from bin/*.jar.
// Like carbon-kernel, it (1) logs to <carbon.home>/repository/logs/wso2carbon.log itself (the
// script sends the JVM's stdout to /dev/null under `start`), (2) writes wso2carbon.pid from
// the JVM, some time after the start (carbon-kernel Main.writePID: a 100-byte buffer, NUL
// padded), and then runs the stand-in (StandIn.main). Stricter than the product on purpose: a
// JDK other than 8 or 11 is refused with WSO2's own error line (the real script only prints it
// and starts anyway). Settings, from <carbon.home>/bin/standin.properties or -D: pid.delay.ms
// (default 1000).
package org.wso2.carbon.bootstrap;

import java.io.FileOutputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.text.SimpleDateFormat;
import java.util.ArrayList;
import java.util.Date;
import java.util.List;
import java.util.Properties;

public class Bootstrap {

    public static final String JDK_ERROR = "[ERROR] CARBON is supported only on JDK 1.7, 1.8, 9, 10 and 11";

    static void log(String level, String msg) {
        String ts = new SimpleDateFormat("yyyy-MM-dd HH:mm:ss,SSS").format(new Date());
        System.out.println("[" + ts + "] [EI-BPS] " + String.format("%5s", level)
                + " {org.wso2.carbon.bootstrap.Bootstrap} - " + msg);
        System.out.flush();
    }

    /** Both streams: the JVM's stdout (the console, or /dev/null under `start`) and the log. */
    static class Tee extends OutputStream {
        final OutputStream a, b;
        Tee(OutputStream a, OutputStream b) { this.a = a; this.b = b; }
        public synchronized void write(int c) throws java.io.IOException { a.write(c); b.write(c); }
        public synchronized void write(byte[] x, int o, int n) throws java.io.IOException { a.write(x, o, n); b.write(x, o, n); }
        public synchronized void flush() throws java.io.IOException { a.flush(); b.flush(); }
    }

    static int jdkFeature() {
        String v = System.getProperty("java.specification.version", "");
        if (v.startsWith("1.")) v = v.substring(2);
        try {
            return Integer.parseInt(v.split("\\.")[0]);
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    /** The JVM's own memory options, as the script passed them ($JVM_MEM_OPTS). */
    static List<String> memOpts() {
        List<String> out = new ArrayList<>();
        try {
            byte[] b = Files.readAllBytes(Paths.get("/proc/self/cmdline"));
            for (String a : new String(b, StandardCharsets.UTF_8).split("\0")) {
                if (a.startsWith("-Xms") || a.startsWith("-Xmx") || a.startsWith("-Xss")
                        || a.startsWith("-XX:MaxPermSize") || a.startsWith("-XX:MaxMetaspaceSize")) out.add(a);
            }
        } catch (Exception e) {
            out.add("(cannot read /proc/self/cmdline: " + e + ")");
        }
        return out;
    }

    static void writePid(Path carbonHome, long delayMs) {
        Thread t = new Thread(() -> {
            try {
                Thread.sleep(delayMs);
                byte[] buf = new byte[100];  // NUL padded, as carbon-kernel's Main.writePID
                byte[] pid = String.valueOf(ProcessHandle.current().pid()).getBytes(StandardCharsets.US_ASCII);
                System.arraycopy(pid, 0, buf, 0, pid.length);
                try (FileOutputStream f = new FileOutputStream(carbonHome.resolve("wso2carbon.pid").toFile())) {
                    f.write(buf);
                }
                log("INFO", "wrote wso2carbon.pid (pid " + ProcessHandle.current().pid() + ") " + delayMs + " ms after the start");
            } catch (Exception e) {
                log("ERROR", "cannot write " + carbonHome.resolve("wso2carbon.pid") + ": " + e);
            }
        }, "standin-pid-writer");
        t.setDaemon(true);
        t.start();
    }

    public static void main(String[] args) throws Exception {
        String ch = System.getProperty("carbon.home");
        Path carbonHome = Paths.get(ch != null ? ch : ".").toAbsolutePath().normalize();
        Path logs = carbonHome.resolve("repository/logs");
        Files.createDirectories(logs);
        OutputStream file = new FileOutputStream(logs.resolve("wso2carbon.log").toFile(), true);
        PrintStream both = new PrintStream(new Tee(new FileOutputStream(java.io.FileDescriptor.out), file),
                true, "UTF-8");
        System.setOut(both);
        System.setErr(both);

        Properties p = new Properties();
        Path conf = carbonHome.resolve("bin/standin.properties");
        if (Files.isRegularFile(conf)) {
            try (Reader r = Files.newBufferedReader(conf)) {
                p.load(r);
            }
        }
        long delay = Long.parseLong(System.getProperty("standin.pid.delay.ms", p.getProperty("pid.delay.ms", "1000")).trim());

        String jh = System.getProperty("java.home");
        int feature = jdkFeature();
        log("INFO", "Java Home        : " + jh);
        log("INFO", "Java Version     : " + System.getProperty("java.version") + " (" + System.getProperty("java.vendor") + ")");
        if (feature != 8 && feature != 11) {
            log("ERROR", JDK_ERROR);
            log("ERROR", "this JVM is JDK " + System.getProperty("java.version") + " (" + jh
                    + "): the lab stand-in refuses to start (stricter than the product); run EI 6.6.0 on JDK 8 or 11");
            System.exit(1);
        }
        log("INFO", "Using Java memory options: " + String.join(" ", memOpts())
                + " (max heap " + Runtime.getRuntime().maxMemory() / (1024 * 1024) + " MB)");
        writePid(carbonHome, delay);
        Class.forName("StandIn").getMethod("main", String[].class).invoke(null, (Object) args);
    }
}
