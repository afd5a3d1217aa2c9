//! Quantum states as arrays: element types and kinds ([`dtype`]), input sources and the
//! checks a state must pass before anything is written ([`input`]), lossy approximations
//! ([`lossy`]), the sparse and Hermitian
//! stream layouts ([`sparse`], [`hermitian`]), streaming analyses ([`analysis`]) and NumPy's
//! `.npy` format ([`npy`]).

pub mod analysis;
pub mod dtype;
pub mod hermitian;
pub mod input;
pub mod lossy;
pub mod npy;
pub mod sparse;
