//! One error type for the whole crate: a message a person can act on, and a
//! kind a program can tell apart.
//!
//! Everything that can go wrong here (a bad weights file, an input too small
//! or too large, a GPU without the needed limits, a lost device) ends up as a
//! sentence, shown by the CLI on stderr and by the browser bindings as a JS
//! `Error` whose `code` is [`ErrorKind::code`].

use std::fmt;

/// What went wrong, for callers that must react differently (the page
/// reloads a model after `DeviceLost`, offers the demo after `BadWeights`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorKind {
    /// The weights file is not a ResNet in a format we read.
    BadWeights,
    /// An argument or input is malformed (wrong length, NaN, unknown name).
    BadInput,
    /// An input (or what it implies: a tensor, a buffer, a dispatch) exceeds
    /// a documented maximum or this adapter's limits.
    InputTooLarge,
    /// This GPU adapter (or browser) lacks a feature or limit we need.
    Unsupported,
    /// The GPU device was lost; the model must be loaded again.
    DeviceLost,
    /// Another GPU failure (validation, out of memory).
    Gpu,
    /// Results were asked for before any frame ran.
    NoFrame,
    /// A file could not be read or written.
    Io,
    #[default]
    Other,
}

impl ErrorKind {
    /// The stable code the JS API puts on its errors (`error.code`).
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::BadWeights => "BAD_WEIGHTS",
            ErrorKind::BadInput => "BAD_INPUT",
            ErrorKind::InputTooLarge => "INPUT_TOO_LARGE",
            ErrorKind::Unsupported => "UNSUPPORTED",
            ErrorKind::DeviceLost => "DEVICE_LOST",
            ErrorKind::Gpu => "GPU_ERROR",
            ErrorKind::NoFrame => "NO_FRAME",
            ErrorKind::Io => "IO_ERROR",
            ErrorKind::Other => "ERROR",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Error { kind: ErrorKind::Other, message: message.into() }
    }

    pub fn of(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into() }
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The same error with `kind`, unless it already has a more specific one.
    pub fn or_kind(mut self, kind: ErrorKind) -> Self {
        if self.kind == ErrorKind::Other {
            self.kind = kind;
        }
        self
    }

    /// The message with `context: ` in front (a file name, say).
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// `bail!("...")` returns early with an [`Error`] built like `format!`;
/// `bail!(Kind, "...")` gives it an [`ErrorKind`].
#[macro_export]
macro_rules! bail {
    ($kind:ident, $fmt:literal $($arg:tt)*) => {
        return Err($crate::Error::of($crate::error::ErrorKind::$kind, format!($fmt $($arg)*)))
    };
    ($($arg:tt)*) => {
        return Err($crate::Error::new(format!($($arg)*)))
    };
}
