//! Physical and virtual addresses as distinct types, for where they cross module boundaries:
//! the conversions between them ([`crate::layout`]), cache maintenance, frames handed out by
//! the kernel's allocator. A [`crate::region::Region`] is always a physical range.

use core::fmt;

/// A physical address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct PhysAddr(pub u64);

/// A virtual address in the kernel's address space.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct VirtAddr(pub u64);

impl PhysAddr {
    /// The address as a number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// `bytes` further on.
    pub const fn add(self, bytes: u64) -> Self {
        Self(self.0 + bytes)
    }

    /// Where the linear map shows it.
    pub const fn to_virt(self) -> VirtAddr {
        crate::layout::phys_to_virt(self)
    }
}

impl VirtAddr {
    /// The address as a number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// `bytes` further on.
    pub const fn add(self, bytes: u64) -> Self {
        Self(self.0 + bytes)
    }

    /// The address as a pointer.
    pub const fn as_ptr<T>(self) -> *const T {
        self.0 as *const T
    }

    /// The address as a mutable pointer.
    pub const fn as_mut_ptr<T>(self) -> *mut T {
        self.0 as *mut T
    }
}

impl fmt::LowerHex for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

impl fmt::LowerHex for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}
