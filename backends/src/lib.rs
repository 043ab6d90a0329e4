//! Compute backends behind one `Backend` trait: CPU now, Vulkan (through `ash`) and Qualcomm
//! Hexagon (through `libloading`) next. The trait, its device-resident buffers and the CPU
//! implementation arrive with the model run; this crate is the place they live.
