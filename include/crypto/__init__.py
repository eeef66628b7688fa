"""Keys and ciphers: the keyring, envelope encryption of fields, blind indexes."""
