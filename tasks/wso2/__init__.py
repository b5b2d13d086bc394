"""WSO2 knowledge: the product's files, elements and JDBC drivers, apart from any transport."""
