"""Icons and other files shipped with maskwork."""
