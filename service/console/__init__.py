"""The coordinators' console: the secretariat's work in the browser, in Khmer and English."""
