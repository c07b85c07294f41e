//! kexec: loading a new kernel image and handing the machine over to it.
//!
//! So far: the arm64 Image header, which both the boot code (writing it) and the loader
//! (checking it) depend on. The entry list, placement and relocation follow.
#![no_std]
