//! One module per subcommand.

pub mod resolve;
pub mod validate;

/// Exit code for invalid input (bad config, nothing resolved).
pub const EXIT_INVALID: u8 = 1;
/// Exit code for usage and I/O errors.
pub const EXIT_ERROR: u8 = 2;
