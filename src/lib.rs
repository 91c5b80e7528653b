//! stonegate
