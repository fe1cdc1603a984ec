"""Sans-I/O protocol core: messages, codec and state machines (spec: protocols/)."""
