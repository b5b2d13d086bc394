"""Test lab: network-namespace hosts for the WSO2 EI BPS cluster deploy tool."""
