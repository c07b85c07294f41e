//! What the kernel parses and writes, with no CPU needed: the command line, cpio archives,
//! gzip, DTBs (reading, compacting, editing), UEFI configuration tables, the ELF core header
//! and printk ring of a crashed kernel (`vmcore`), SHA-256 padding, and the kexec chain's
//! hand-over block.

pub mod bootentry;
pub mod bootrecord;
pub mod chain;
pub mod cmdline;
pub mod cpio;
pub mod dtb;
pub mod efi;
pub mod gzip;
pub mod partition;
pub mod sha256;
pub mod vmcore;
