//! The verifier workbench's analysis: reading verifier logs, diagnosing
//! rejections, and a static NULL-check pass for portability warnings.

pub mod diagnose;
pub mod effect;
pub mod log;
pub mod nullcheck;
pub mod regstate;
