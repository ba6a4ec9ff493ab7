"""A plugin module that fails while importing, as a plugin with a bug would."""

raise RuntimeError("this module is broken on purpose")
