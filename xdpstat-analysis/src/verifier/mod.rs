//! The verifier workbench's analysis: reading verifier logs, diagnosing
//! rejections, and a static NULL-check pass for portability warnings.
//!
//! - [`log`]: the streaming log parser; it reads each instruction's text
//!   into an [`effect::Effect`] and each register's value into a
//!   [`regstate::RegState`] once, as it reads them;
//! - [`effect`]: what an instruction does, from its text (the log side)
//!   or from a decoded [`crate::insn::Insn`] (the object side), in one
//!   vocabulary;
//! - [`regstate`]: a register's value in the verifier's state, typed;
//! - [`diagnose`]: from a parsed log to a diagnosis, by a table of rules,
//!   one file per kind (`diagnose/rules/`);
//! - [`nullcheck`]: the static pass over decoded instructions;
//! - [`helpers`]: helper names by number, for logs that print only numbers.

pub mod diagnose;
pub mod effect;
pub mod helpers;
pub mod log;
pub mod nullcheck;
pub mod regstate;
