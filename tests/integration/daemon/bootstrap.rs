//! Issue 8: the bootstrap administrator in directory mode.
