//! STUB until the log capture lands.
