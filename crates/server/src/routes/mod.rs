//! The JSON API's handlers, one module per area; each handler extracts, makes one domain or
//! store call, and maps the result to a DTO.

pub mod assign;
pub mod audit;
pub mod experiments;
pub mod ops;
pub mod outcomes;
