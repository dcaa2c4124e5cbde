"""One router per resource: jobs, health, metrics, and the web page."""
