//! Refinement tests, in one test binary (one link instead of one per file).

mod corpus;
mod refine;
mod validate;
