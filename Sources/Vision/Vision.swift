// Vision module.
