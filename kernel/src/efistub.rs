//! The EFI stub: UEFI firmware starts the Image as a PE/COFF application
//! (`efi_pe_entry` in `arch/efi_entry.S`), and this turns that start into a normal boot, as
//! Linux's stub does (`drivers/firmware/efi/libstub`): the command line from `LoadOptions`,
//! the initrd from the `LINUX_EFI_INITRD_MEDIA_GUID` LoadFile2 protocol, the DTB from the
//! configuration table; the Image moved to a 2 MiB-aligned allocation if it is not on one;
//! the memory map taken and boot services exited (again if the map key changed), the map and
//! the system table recorded in `/chosen`; then the boot path, at the firmware's EL.
//!
//! It runs where the firmware loaded the image, with the firmware's identity map, before
//! anything of the kernel is set up: so it is position independent by construction. It uses
//! only code and data reached PC-relative (no statics holding pointers, no `core::fmt`, no
//! trait objects, no panics: every index is checked) and the kernel's own heap (inside the
//! image) for the DTB editor. Everything it says goes to the firmware's console, one line
//! each, starting `efistub:`; on any failure before `ExitBootServices` it returns the
//! error to the firmware.

mod esp;

use alloc::vec::Vec;
use core::ffi::c_void;
use core::ptr::null_mut;
use kexec::place::IMAGE_ALIGN;
use mm::addr::VirtAddr;
use uefi_raw::protocol::console::SimpleTextOutputProtocol;
use uefi_raw::protocol::device_path::{DevicePathProtocol, DeviceSubType, DeviceType};
use uefi_raw::protocol::loaded_image::LoadedImageProtocol;
use uefi_raw::protocol::media::LoadFile2Protocol;
use uefi_raw::table::boot::{AllocateType, BootServices, MemoryDescriptor, MemoryType};
use uefi_raw::table::system::SystemTable;
use uefi_raw::{Guid, Handle, Status};

unsafe extern "C" {
    /// `arch/efi_entry.S`: MMU and caches off at this EL, then the boot path at `entry`.
    fn efi_enter_kernel(entry: u64, dtb: u64) -> !;
}

/// `DEVICE_TREE_GUID`: the firmware's DTB in the configuration table.
const DEVICE_TREE_GUID: Guid = uefi_raw::guid!("b1b621d5-f19c-41a5-830b-d9152c69aae0");
/// `LINUX_EFI_INITRD_MEDIA_GUID`: the vendor media device path of the initrd's LoadFile2.
const INITRD_MEDIA_GUID: Guid = uefi_raw::guid!("5568e427-68fc-4f3d-ac74-ca555231cc68");
const PAGE: u64 = 4096;
/// Room the DTB gets for the properties the stub adds.
const DTB_SLACK: usize = 16 << 10;
/// The boot protocol's limit on the DTB.
/// Descriptors of room beyond what `GetMemoryMap` asked for (the allocation for the map,
/// and the firmware's own between the calls, add some).
const MAP_SLACK_DESCRIPTORS: usize = 32;
/// How often `ExitBootServices` may fail with a changed map before the stub gives up.
const EXIT_RETRIES: usize = 8;

/// The firmware's console, for `efistub:` lines.
struct Console(*mut SimpleTextOutputProtocol);

impl Console {
    /// Writes `parts` as one line (ASCII; anything else becomes `?`).
    fn line(&self, parts: &[&str]) {
        if self.0.is_null() {
            return;
        }
        let mut buf = [0u16; 160];
        let mut n = 0;
        let mut push = |c: u16| {
            if n < buf.len() - 3 {
                buf[n] = c;
                n += 1;
            }
        };
        for c in "efistub: ".bytes() {
            push(c as u16);
        }
        for part in parts {
            for c in part.bytes() {
                push(if c.is_ascii() { c as u16 } else { b'?' as u16 });
            }
        }
        let len = n.min(buf.len() - 3);
        buf[len] = b'\r' as u16;
        buf[len + 1] = b'\n' as u16;
        buf[len + 2] = 0;
        // SAFETY: ConOut is the firmware's protocol instance; the string is NUL-terminated.
        let _ = unsafe { ((*self.0).output_string)(self.0, buf.as_ptr()) };
    }
}

/// `v` in hex, `0x`-prefixed, into `buf`.
fn hex(v: u64, buf: &mut [u8; 18]) -> &str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    buf[0] = b'0';
    buf[1] = b'x';
    for i in 0..16 {
        buf[2 + i] = DIGITS[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
    core::str::from_utf8(buf).unwrap_or("?")
}

/// Where UEFI enters (from `efi_pe_entry`): `image_base` is where the firmware put the
/// Image. Returns only on failure, with the status the firmware gets.
#[unsafe(no_mangle)]
extern "C" fn efistub_main(image: Handle, st: *const SystemTable, image_base: u64) -> Status {
    // SAFETY: the firmware passes its system table, valid until ExitBootServices.
    let st = unsafe { &*st };
    let con = Console(st.stdout);
    // SAFETY: boot services are available until ExitBootServices.
    let bs = unsafe { &*st.boot_services };
    match run(image, st, bs, &con, image_base) {
        Ok(never) => match never {},
        Err((status, why)) => {
            let mut h = [0u8; 18];
            con.line(&[
                "cannot boot: ",
                why,
                " (EFI status ",
                hex(status.0 as u64, &mut h),
                ")",
            ]);
            status
        }
    }
}

type Failure = (Status, &'static str);

/// The stub's work, in the order it must happen: what the firmware gives (the loaded image
/// and its command line, the DTB, the initrd), where the kernel runs, the next DTB tried
/// once, then ExitBootServices, the memory map's runtime regions, the DTB written for good,
/// and the jump.
fn run(
    image: Handle,
    st: &SystemTable,
    bs: &BootServices,
    con: &Console,
    image_base: u64,
) -> Result<core::convert::Infallible, Failure> {
    let started = crate::arch::ticks();
    crate::memory::init_heap();
    let mut h = [0u8; 18];
    con.line(&["started at counter ", hex(started, &mut h)]);

    let li = loaded_image(bs, image)?;
    let cmdline = load_options(li);
    let fw_dtb = firmware_dtb(st)?;
    let initrd = find_initrd(bs, li, &cmdline, con)?;
    let esp_files = esp_entries(bs, li, con);
    let image_size = image_size(image_base);
    let kernel = place_image(bs, con, image_base, image_size)?;

    // The next DTB, edited once now (to find out that it can be) with the properties it
    // will get, and again after ExitBootServices with their values.
    let secure_boot = secure_boot_mode(st);
    let (db, dbx) = signature_databases(st, con, secure_boot == secureboot::ENABLED);
    let rng = efi_rng(bs, con);
    let db_len = db.as_ref().map_or(0, Vec::len) + dbx.as_ref().map_or(0, Vec::len);
    let dtb_pages = (fw_dtb.len() + DTB_SLACK + db_len)
        .min(kernel::formats::dtb::MAX_SIZE)
        .div_ceil(PAGE as usize);
    let dtb_buf = allocate(bs, dtb_pages)?;
    let dtb_cap = dtb_pages * PAGE as usize;
    let st_pa = st as *const SystemTable as u64;
    let handed = Handed {
        initrd,
        esp_files,
        system_table: st_pa,
        secure_boot,
        db: db.as_deref(),
        dbx: dbx.as_deref(),
        rng,
    };
    let chosen = |mmap: (u64, u32, u32, u32)| next_dtb(fw_dtb, &cmdline, &handed, mmap);
    match chosen((0, 0, 0, 0)) {
        Some(b) if b.len() <= dtb_cap => {}
        Some(_) => return Err((Status::BUFFER_TOO_SMALL, "the edited DTB is too large")),
        None => return Err((Status::LOAD_ERROR, "the firmware's DTB cannot be edited")),
    }

    let wrong_key = cmdline
        .split(|&b| b == b' ')
        .any(|w| w == b"efistub.wrong_map_key");
    let map = exit_boot_services(bs, con, image, wrong_key)?;
    // No firmware services from here on: nothing can be said, and nothing can fail that did
    // not succeed above.
    runtime_at_physical(&map);
    let blob = chosen((map.buf, map.size as u32, map.desc_size as u32, map.version));
    let Some(blob) = blob.filter(|b| b.len() <= dtb_cap) else {
        halt();
    };
    // SAFETY: dtb_buf holds dtb_cap bytes, allocated above.
    unsafe { core::ptr::copy_nonoverlapping(blob.as_ptr(), dtb_buf as *mut u8, blob.len()) };
    let dtb = (dtb_buf, blob.len() as u64);
    let map = (map.buf, map.size as u64);
    hand_over(&cmdline, (kernel, image_size), dtb, map, initrd)
}

/// The firmware's EFI_LOADED_IMAGE_PROTOCOL for this image: where it is, its command line.
fn loaded_image(bs: &BootServices, image: Handle) -> Result<&LoadedImageProtocol, Failure> {
    let mut li: *mut c_void = null_mut();
    // SAFETY: HandleProtocol with the firmware's image handle and a valid GUID.
    let s = unsafe { (bs.handle_protocol)(image, &LoadedImageProtocol::GUID, &mut li) };
    if s != Status::SUCCESS || li.is_null() {
        return Err((s, "no EFI_LOADED_IMAGE_PROTOCOL on this image"));
    }
    // SAFETY: the firmware's protocol instance, valid until ExitBootServices.
    Ok(unsafe { &*(li as *const LoadedImageProtocol) })
}

/// The DTB the firmware publishes (ACPI-only firmware has none).
fn firmware_dtb(st: &SystemTable) -> Result<&'static [u8], Failure> {
    let Some(fw_dtb) = config_table(st, DEVICE_TREE_GUID) else {
        return Err((
            Status::UNSUPPORTED,
            "the firmware publishes no DTB (an ACPI-only boot: on QEMU use -M virt,acpi=off)",
        ));
    };
    // SAFETY: the firmware's DTB (boot services map memory one to one); its header says how
    // long it is.
    unsafe { kernel::formats::dtb::blob_at(fw_dtb as *const u8) }
        .ok_or((Status::LOAD_ERROR, "the firmware's DTB has no valid header"))
}

/// The initrd: from the firmware's LoadFile2 (EDK2's -initrd, U-Boot's initrd), else from an
/// `initrd=` path on the volume this image was loaded from. `(address, length)`.
fn find_initrd(
    bs: &BootServices,
    li: &LoadedImageProtocol,
    cmdline: &[u8],
    con: &Console,
) -> Result<Option<(u64, u64)>, Failure> {
    let mut h = [0u8; 18];
    if let Some(rd) = load_initrd(bs)? {
        con.line(&["initrd at ", hex(rd.0, &mut h), " (LoadFile2)"]);
        return Ok(Some(rd));
    }
    let Some(path) = initrd_path(cmdline) else {
        return Ok(None);
    };
    let rd = load_initrd_file(bs, li, path)?;
    con.line(&[
        "initrd at ",
        hex(rd.0, &mut h),
        " (initrd= on the boot volume)",
    ]);
    Ok(Some(rd))
}

/// Where the kernel runs: in place if the firmware loaded it 2 MiB-aligned, else a copy
/// of the Image's file bytes at the next 2 MiB boundary of a fresh allocation.
fn place_image(
    bs: &BootServices,
    con: &Console,
    image_base: u64,
    image_size: u64,
) -> Result<u64, Failure> {
    let mut h = [0u8; 18];
    if image_base.is_multiple_of(IMAGE_ALIGN) {
        con.line(&["running in place at ", hex(image_base, &mut h)]);
        return Ok(image_base);
    }
    let pages = (image_size + IMAGE_ALIGN).div_ceil(PAGE) as usize;
    let base = allocate(bs, pages)?;
    let dest = base.next_multiple_of(IMAGE_ALIGN);
    // SAFETY: [dest, dest + file_size) lies in the fresh allocation; the source is the
    // loaded image (RVA = file offset, `boot/src/entry.S`).
    unsafe {
        core::ptr::copy_nonoverlapping(
            image_base as *const u8,
            dest as *mut u8,
            boot::symbols::file_size() as usize,
        )
    };
    con.line(&["moved the Image to ", hex(dest, &mut h)]);
    Ok(dest)
}

/// The memory map as the last GetMemoryMap wrote it.
struct FinalMap {
    /// Its buffer (allocated before that last call).
    buf: u64,
    /// Bytes of descriptors.
    size: usize,
    /// Bytes per descriptor.
    desc_size: usize,
    /// Descriptor version.
    version: u32,
}

/// Reads the memory map and exits boot services with its key, reading it again when the
/// firmware says the key is stale (`efistub.wrong_map_key`, a test of this loop, hands it a
/// stale key every time).
fn exit_boot_services(
    bs: &BootServices,
    con: &Console,
    image: Handle,
    wrong_key: bool,
) -> Result<FinalMap, Failure> {
    let (mut size, mut key, mut desc_size, mut version) = (0usize, 0usize, 0usize, 0u32);
    // SAFETY: a size query (null buffer of size 0).
    let _ = unsafe {
        (bs.get_memory_map)(
            &mut size,
            null_mut(),
            &mut key,
            &mut desc_size,
            &mut version,
        )
    };
    if desc_size < core::mem::size_of::<MemoryDescriptor>() {
        return Err((
            Status::LOAD_ERROR,
            "GetMemoryMap reports a descriptor size below 40 bytes",
        ));
    }
    // The last line: from here on the console is the firmware's no more.
    let mut h = [0u8; 18];
    con.line(&[
        "exiting boot services at counter ",
        hex(crate::arch::ticks(), &mut h),
    ]);
    let map_cap = size + MAP_SLACK_DESCRIPTORS * desc_size;
    let buf = allocate(bs, map_cap.div_ceil(PAGE as usize))?;
    for _ in 0..EXIT_RETRIES {
        size = map_cap;
        // SAFETY: a buffer of map_cap bytes.
        let s = unsafe {
            (bs.get_memory_map)(
                &mut size,
                buf as *mut MemoryDescriptor,
                &mut key,
                &mut desc_size,
                &mut version,
            )
        };
        if s != Status::SUCCESS {
            return Err((s, "GetMemoryMap failed"));
        }
        let key = if wrong_key { key.wrapping_add(1) } else { key };
        // SAFETY: the key of the map just read. After a failure only GetMemoryMap may be
        // called again (UEFI 2.10, 7.4), which this loop does.
        let s = unsafe { (bs.exit_boot_services)(image, key) };
        if s == Status::SUCCESS {
            return Ok(FinalMap {
                buf,
                size,
                desc_size,
                version,
            });
        }
        if s != Status::INVALID_PARAMETER {
            return Err((s, "ExitBootServices failed"));
        }
    }
    Err((
        Status::ABORTED,
        "ExitBootServices kept failing: the memory map changed at every try",
    ))
}

/// SetVirtualAddressMap is never called: the runtime services stay at their physical
/// addresses, and the map says so (VirtualStart = PhysicalStart for every runtime region),
/// so that a later kernel that maps them where the map says (Linux maps them in its own EFI
/// page tables) calls them where they run.
fn runtime_at_physical(map: &FinalMap) {
    for i in 0..map.size / map.desc_size {
        let d = (map.buf as usize + i * map.desc_size) as *mut MemoryDescriptor;
        // SAFETY: entry i of the map GetMemoryMap wrote (stride desc_size >= 40 bytes).
        unsafe {
            if (*d)
                .att
                .contains(uefi_raw::table::boot::MemoryAttribute::RUNTIME)
            {
                (*d).virt_start = (*d).phys_start;
            }
        }
    }
}

/// Puts everything the kernel reads with its MMU off, or may read before its caches are on,
/// at the point of coherency, and enters the kernel. Each range is `(address, bytes)`;
/// `kernel` is `(address, image_size)`. The whole image_size is cleaned, not only the file's
/// bytes, since the boot code writes its early tables there with its MMU off (a dirty line
/// left over them, evicted later, would overwrite them).
fn hand_over(
    cmdline: &[u8],
    kernel: (u64, u64),
    dtb: (u64, u64),
    map: (u64, u64),
    initrd: Option<(u64, u64)>,
) -> ! {
    let ((kernel, image_size), file_size) = (kernel, boot::symbols::file_size());
    // Test builds: leave dirty lines over the image's BSS, heap and tables, as a loader that
    // zero-fills SizeOfImage with its caches on does (`fault.efi=dirty-bss`).
    if stub_fault(cmdline, b"fault.efi=dirty-bss") {
        // SAFETY: [kernel, kernel + image_size) is the image's, in memory the stub owns.
        unsafe {
            core::ptr::write_bytes(
                (kernel + file_size) as *mut u8,
                0,
                (image_size - file_size) as usize,
            )
        };
    }
    let handed_over = if stub_fault(cmdline, b"fault.skip=efi-clean-bss") {
        file_size
    } else {
        image_size
    };
    // Boot services mapped memory one to one: each address is its own VA.
    // (arch::clean_inval_dcache is PC-relative code like the rest of the stub.)
    let clean = |(at, len): (u64, u64)| crate::arch::clean_inval_dcache(VirtAddr(at), len);
    clean((kernel, handed_over));
    clean(dtb);
    clean(map);
    if let Some(rd) = initrd {
        clean(rd);
    }
    // SAFETY: a 2 MiB-aligned Image with its entry at offset 0, a DTB, all cleaned.
    unsafe { efi_enter_kernel(kernel, dtb.0) }
}

/// Stops this CPU (there is no one left to tell).
fn halt() -> ! {
    loop {
        aarch64_cpu::asm::wfi();
    }
}

/// `LoadOptions` (UCS-2, as firmware passes `-append` or a boot entry's options) as UTF-8.
fn load_options(li: &LoadedImageProtocol) -> alloc::vec::Vec<u8> {
    let mut out = alloc::vec::Vec::new();
    if li.load_options.is_null() {
        return out;
    }
    let units = li.load_options_size as usize / 2;
    // SAFETY: the firmware's buffer of load_options_size bytes.
    let s = unsafe { core::slice::from_raw_parts(li.load_options as *const u16, units) };
    for c in char::decode_utf16(s.iter().copied().take_while(|&u| u != 0)) {
        let c = c.unwrap_or('?');
        let mut b = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
    }
    // What U-Boot and shells prepend.
    while out.first() == Some(&b' ') {
        out.remove(0);
    }
    out
}

/// The configuration table entry with `guid`.
fn config_table(st: &SystemTable, guid: Guid) -> Option<u64> {
    let n = st
        .number_of_configuration_table_entries
        .min(kernel::formats::efi::MAX_TABLES);
    if st.configuration_table.is_null() {
        return None;
    }
    // SAFETY: the firmware's array of n entries.
    let tables = unsafe { core::slice::from_raw_parts(st.configuration_table, n) };
    tables
        .iter()
        .find(|t| t.vendor_guid == guid)
        .map(|t| t.vendor_table as u64)
}

/// The initrd through the LoadFile2 protocol on the `LINUX_EFI_INITRD_MEDIA_GUID` vendor
/// media device path: (address, length), or `None` if the firmware offers none.
fn load_initrd(bs: &BootServices) -> Result<Option<(u64, u64)>, Failure> {
    /// A vendor media node with the GUID, then the end node.
    #[repr(C, packed)]
    struct InitrdPath {
        vendor: DevicePathProtocol,
        guid: Guid,
        end: DevicePathProtocol,
    }
    let path = InitrdPath {
        vendor: DevicePathProtocol {
            major_type: DeviceType::MEDIA,
            sub_type: DeviceSubType::MEDIA_VENDOR,
            length: [20, 0],
        },
        guid: INITRD_MEDIA_GUID,
        end: DevicePathProtocol {
            major_type: DeviceType::END,
            sub_type: DeviceSubType::END_ENTIRE,
            length: [4, 0],
        },
    };
    let mut dp = &path as *const InitrdPath as *const DevicePathProtocol;
    let mut handle: Handle = null_mut();
    // SAFETY: a well-formed device path; the firmware writes the handle.
    let s = unsafe { (bs.locate_device_path)(&LoadFile2Protocol::GUID, &mut dp, &mut handle) };
    if s != Status::SUCCESS {
        return Ok(None);
    }
    let mut lf: *mut c_void = null_mut();
    // SAFETY: the handle LocateDevicePath found.
    let s = unsafe { (bs.handle_protocol)(handle, &LoadFile2Protocol::GUID, &mut lf) };
    if s != Status::SUCCESS || lf.is_null() {
        return Err((s, "the initrd's LoadFile2 protocol cannot be opened"));
    }
    let lf = lf as *mut LoadFile2Protocol;
    // What LocateDevicePath left of the path (its end node) names the file, as the
    // firmware's LoadFile2 expects.
    let fp = dp;
    let mut size = 0usize;
    // SAFETY: a size query with a null buffer.
    let s = unsafe { ((*lf).load_file)(lf, fp, uefi_raw::Boolean::FALSE, &mut size, null_mut()) };
    if s != Status::BUFFER_TOO_SMALL || size == 0 {
        return Err((s, "the initrd's LoadFile2 does not say how large it is"));
    }
    let pa = allocate(bs, size.div_ceil(PAGE as usize))?;
    // SAFETY: a buffer of at least size bytes.
    let s = unsafe {
        ((*lf).load_file)(
            lf,
            fp,
            uefi_raw::Boolean::FALSE,
            &mut size,
            pa as *mut c_void,
        )
    };
    if s != Status::SUCCESS {
        return Err((s, "the initrd could not be loaded through LoadFile2"));
    }
    Ok(Some((pa, size as u64)))
}

/// Linux's `enum efi_secureboot_mode` (`include/linux/efi.h`): what the stub reports in
/// `/chosen linux,uefi-secure-boot`, which Linux requires with the other UEFI properties.
mod secureboot {
    pub const DISABLED: u32 = 2;
    pub const ENABLED: u32 = kernel::platform::UEFI_SECURE_BOOT_ENABLED;
}

/// The secure-boot mode as Linux's stub works it out (`efi_get_secureboot`): enabled if the
/// `SecureBoot` variable is 1 and `SetupMode` is not; disabled otherwise (or if unreadable).
fn secure_boot_mode(st: &SystemTable) -> u32 {
    let var = |name: &[u16]| -> Option<u8> {
        if st.runtime_services.is_null() {
            return None;
        }
        let mut value = 0u8;
        let mut size = 1usize;
        // SAFETY: the firmware's runtime services (usable before ExitBootServices), a
        // NUL-terminated name and a one-byte buffer.
        let s = unsafe {
            ((*st.runtime_services).get_variable)(
                name.as_ptr(),
                &uefi_raw::table::runtime::VariableVendor::GLOBAL_VARIABLE.0,
                null_mut(),
                &mut size,
                &mut value,
            )
        };
        (s == Status::SUCCESS && size == 1).then_some(value)
    };
    let secure_boot = var(&utf16::<11>("SecureBoot"));
    let setup_mode = var(&utf16::<10>("SetupMode"));
    if secure_boot == Some(1) && setup_mode != Some(1) {
        secureboot::ENABLED
    } else {
        secureboot::DISABLED
    }
}

/// Bytes asked of the firmware's EFI_RNG_PROTOCOL.
const EFI_RNG_BYTES: usize = 64;

/// Entropy from the firmware's EFI_RNG_PROTOCOL (default algorithm), if it has one (EDK2
/// with a virtio-rng device, or on a CPU with `RNDR`): the kernel's pool takes it, as Linux's
/// stub hands its seed on.
fn efi_rng(bs: &BootServices, con: &Console) -> Option<[u8; EFI_RNG_BYTES]> {
    use uefi_raw::protocol::rng::RngProtocol;
    let mut rng: *mut c_void = null_mut();
    // SAFETY: LocateProtocol with a valid GUID and out-pointer, before ExitBootServices.
    let s = unsafe { (bs.locate_protocol)(&RngProtocol::GUID, null_mut(), &mut rng) };
    if s != Status::SUCCESS || rng.is_null() {
        return None;
    }
    let rng = rng as *mut RngProtocol;
    let mut buf = [0u8; EFI_RNG_BYTES];
    // SAFETY: the firmware's protocol instance; the default algorithm (null); a buffer of
    // EFI_RNG_BYTES bytes.
    let s = unsafe { ((*rng).get_rng)(rng, core::ptr::null(), buf.len(), buf.as_mut_ptr()) };
    let mut h = [0u8; 18];
    if s != Status::SUCCESS {
        con.line(&[
            "EFI_RNG_PROTOCOL failed (EFI status ",
            hex(s.0 as u64, &mut h),
            "): no seed from it",
        ]);
        return None;
    }
    con.line(&[
        "EFI_RNG_PROTOCOL: ",
        hex(buf.len() as u64, &mut h),
        " bytes for the kernel's entropy pool",
    ]);
    Some(buf)
}

/// UEFI's `db` and `dbx` (signature databases), to hand to the kernel for verified kexec:
/// a Secure Boot machine's own keys decide what it kexecs. `db` only with Secure Boot
/// enabled (in setup mode anyone may write it); `dbx` always (it only takes trust away).
/// Either may be absent; one that cannot be read is reported and left out.
fn signature_databases(
    st: &SystemTable,
    con: &Console,
    secure_boot: bool,
) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let read = |name: &[u16]| -> Result<Option<Vec<u8>>, Status> {
        if st.runtime_services.is_null() {
            return Ok(None);
        }
        let vendor = &uefi_raw::table::runtime::VariableVendor::IMAGE_SECURITY_DATABASE.0;
        let mut size = 0usize;
        let mut buf: Vec<u8> = Vec::new();
        // The first call asks the size: no buffer (NULL, as the specification has it).
        let mut data = null_mut();
        for _ in 0..2 {
            // SAFETY: the firmware's runtime services (usable before ExitBootServices), a
            // NUL-terminated name and a buffer of `size` bytes.
            let s = unsafe {
                ((*st.runtime_services).get_variable)(
                    name.as_ptr(),
                    vendor,
                    null_mut(),
                    &mut size,
                    data,
                )
            };
            match s {
                Status::SUCCESS => {
                    buf.truncate(size);
                    return Ok(Some(buf));
                }
                Status::NOT_FOUND => return Ok(None),
                // The first call learns the size; the second has room for it.
                Status::BUFFER_TOO_SMALL if buf.is_empty() => {
                    buf.resize(size, 0);
                    data = buf.as_mut_ptr();
                }
                other => return Err(other),
            }
        }
        Err(Status::BUFFER_TOO_SMALL)
    };
    let report = |what: &str, r: Result<Option<Vec<u8>>, Status>| match r {
        Ok(Some(v)) => {
            let mut h = [0u8; 18];
            con.line(&[
                what,
                ": ",
                hex(v.len() as u64, &mut h),
                " bytes, for verified kexec",
            ]);
            Some(v)
        }
        Ok(None) => None,
        Err(s) => {
            let mut h = [0u8; 18];
            con.line(&[
                what,
                " cannot be read (EFI status ",
                hex(s.0 as u64, &mut h),
                "): left out",
            ]);
            None
        }
    };
    let db = if secure_boot {
        report("UEFI db", read(&utf16::<3>("db")))
    } else {
        None
    };
    let dbx = report("UEFI dbx", read(&utf16::<4>("dbx")));
    (db, dbx)
}

/// An ASCII name as a NUL-terminated UCS-2 array of `N` units (the name and its NUL).
fn utf16<const N: usize>(s: &str) -> [u16; N] {
    let mut out = [0u16; N];
    for (o, b) in out.iter_mut().zip(s.bytes()) {
        *o = b as u16;
    }
    out
}

/// Test builds (`--features fault-inject`): whether the command line has the word `word`.
/// Never in other builds.
fn stub_fault(cmdline: &[u8], word: &[u8]) -> bool {
    cfg!(feature = "fault-inject") && cmdline.split(|&b| b == b' ').any(|w| w == word)
}

/// The first `initrd=PATH` word of the command line.
fn initrd_path(cmdline: &[u8]) -> Option<&[u8]> {
    cmdline
        .split(|&b| b == b' ')
        .find_map(|w| w.strip_prefix(b"initrd="))
        .filter(|p| !p.is_empty())
}

/// The file `path` (`/` or `\` separated) from the volume the image was loaded from.
fn load_initrd_file(
    bs: &BootServices,
    li: &LoadedImageProtocol,
    path: &[u8],
) -> Result<(u64, u64), Failure> {
    let root =
        esp::root(bs, li).map_err(|(s, _)| (s, "initrd=: the boot volume cannot be opened"))?;
    let file = root.open(path).ok_or((
        Status::NOT_FOUND,
        "initrd=: no such file on the boot volume",
    ))?;
    let size = match file.info() {
        Some((size, false)) if size > 0 => size,
        _ => {
            return Err((
                Status::LOAD_ERROR,
                "initrd=: the file is empty or its size unknown",
            ))
        }
    };
    let pa = allocate(bs, (size as usize).div_ceil(PAGE as usize))?;
    file.read_to(pa, size)?;
    Ok((pa, size))
}

/// `pages` pages of loader data anywhere.
fn allocate(bs: &BootServices, pages: usize) -> Result<u64, Failure> {
    let mut pa = 0u64;
    // SAFETY: AllocatePages writes the address of a fresh allocation.
    let s = unsafe {
        (bs.allocate_pages)(
            AllocateType::ANY_PAGES,
            MemoryType::LOADER_DATA,
            pages,
            &mut pa,
        )
    };
    if s != Status::SUCCESS {
        return Err((s, "AllocatePages failed"));
    }
    Ok(pa)
}

/// The Image header's `image_size` (at 0x10) of the image at `base`.
fn image_size(base: u64) -> u64 {
    // SAFETY: the loaded image starts with the 64-byte header.
    unsafe { ((base + 0x10) as *const u64).read_unaligned() }
}

/// What the stub hands the kernel in `/chosen`, besides the memory map.
struct Handed<'a> {
    initrd: Option<(u64, u64)>,
    /// The ESP's boot entries and their files, as a cpio archive.
    esp_files: Option<(u64, u64)>,
    system_table: u64,
    secure_boot: u32,
    /// UEFI's `db` and `dbx` variables (EFI signature lists), for verified kexec.
    db: Option<&'a [u8]>,
    dbx: Option<&'a [u8]>,
    /// Bytes from the firmware's EFI_RNG_PROTOCOL, for the kernel's entropy pool.
    rng: Option<[u8; EFI_RNG_BYTES]>,
}

/// The ESP's boot entries and the files they name ([`esp::read_entries`]); on any failure
/// the boot goes on without them, and says why.
fn esp_entries(bs: &BootServices, li: &LoadedImageProtocol, con: &Console) -> Option<(u64, u64)> {
    let mut h = [0u8; 18];
    let found = esp::root(bs, li).and_then(|root| esp::read_entries(bs, &root));
    match found {
        Ok(Some((pa, len))) => {
            con.line(&[
                "boot entries and their files at ",
                hex(pa, &mut h),
                " (the ESP, as esp0p1)",
            ]);
            Some((pa, len))
        }
        Ok(None) => None,
        Err((_, why)) => {
            con.line(&["the ESP's boot entries cannot be read: ", why]);
            None
        }
    }
}

/// The firmware's DTB with `/chosen` as the kernel expects after UEFI.
fn next_dtb(
    fw: &[u8],
    cmdline: &[u8],
    handed: &Handed,
    (mmap, mmap_size, desc_size, desc_ver): (u64, u32, u32, u32),
) -> Option<alloc::vec::Vec<u8>> {
    let Handed {
        initrd,
        esp_files,
        system_table,
        secure_boot,
        db,
        dbx,
        rng,
    } = *handed;
    // No load options (a boot from the ESP): the DTB's own bootargs stay.
    kernel::formats::dtb::Chosen::default()
        .initrd(initrd.map(|(pa, len)| (pa, pa + len)))
        .range(
            "hobby,esp-files-start",
            "hobby,esp-files-end",
            esp_files.map(|(pa, len)| (pa, pa + len)),
        )
        .u64("linux,uefi-system-table", system_table)
        .u64("linux,uefi-mmap-start", mmap)
        .u32("linux,uefi-mmap-size", mmap_size)
        .u32("linux,uefi-mmap-desc-size", desc_size)
        .u32("linux,uefi-mmap-desc-ver", desc_ver)
        .u32("linux,uefi-secure-boot", secure_boot)
        .bytes("hobby,uefi-db", db.map(<[u8]>::to_vec))
        .bytes("hobby,uefi-dbx", dbx.map(<[u8]>::to_vec))
        .bytes(kernel::platform::EFI_RNG_SEED, rng.map(|r| r.to_vec()))
        .bootargs((!cmdline.is_empty()).then_some(cmdline))
        .apply(fw)
        .ok()
}
