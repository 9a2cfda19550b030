//! Partner stand-ins: small HTTP servers that play a partner's part where
//! the real system cannot be reached (the demo, the benchmark, tests). They
//! record what they accepted so a run can be checked afterwards.

pub mod national;
pub mod provincial;
pub mod receiver;
