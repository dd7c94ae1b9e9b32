//! The report of a lab or benchmark run: one JSON schema ([`report::RunReport`]) that the
//! lab and the benchmark rig fill, plain-text tables of one run or several side by side,
//! SVG plots, and a self-contained HTML page (no script, no external resource); and the
//! timeline of MOBIKE address changes that feeds it.

pub mod handover;
pub mod html;
pub mod report;
pub mod svg;
