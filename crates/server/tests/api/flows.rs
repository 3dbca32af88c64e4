//! Full request flows of every JSON API route: experiments, lifecycle, assignment, outcomes, audit, metrics.

mod assign;
mod experiments;
mod ops;
mod outcomes;
