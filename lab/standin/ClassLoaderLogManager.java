// org.apache.juli.ClassLoaderLogManager for the lab stand-in (TEST LAB ONLY): WSO2's
// wso2server.sh names it as the JVM's java.util.logging manager (the product ships Tomcat's
// juli in bin/); without it the JVM prints a ClassNotFoundException at start.
package org.apache.juli;

public class ClassLoaderLogManager extends java.util.logging.LogManager {
}
