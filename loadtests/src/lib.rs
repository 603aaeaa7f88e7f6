//! What the benchmarks share: how much CPU and memory a process used, from `/proc`.

pub mod proc_stats;
