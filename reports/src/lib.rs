//! The result schema and its writers: JSON Lines, CSV, charts and the Markdown/HTML report.
//! Arrives with the benchmark runner.
