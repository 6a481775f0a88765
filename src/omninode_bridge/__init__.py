"""OmniNode Bridge: the event, stamping and workflow hub of the omninode ecosystem."""

__version__ = "0.1.0"
