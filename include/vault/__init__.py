"""The encrypted vault: records whose personal fields are encrypted per data subject."""
