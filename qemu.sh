#!/usr/bin/env bash
# Builds the kernel and boots it in QEMU, serial on this terminal. QEMU exits when the kernel
# powers off (status 0), panics (1) or takes an unexpected exception (2). Ctrl-A X quits QEMU
# at any time.
set -euo pipefail
cd "$(dirname "$0")"

usage() {
    cat <<'USAGE'
usage: ./qemu.sh [options] [-- extra QEMU arguments]
  --el 1|2          exception level to enter the kernel at (default 2)
  --mem SIZE        RAM, QEMU syntax: 128M, 1G, 8G (default 1G)
  --smp N           CPUs (default 1)
  --cpu MODEL       CPU model (default cortex-a72, as on the Raspberry Pi 4)
  --machine NAME    QEMU machine: virt (default) or raspi4b (uses Debian's Pi 4 DTB unless
                    --dtb; ignores --el, --mem, --smp and --cpu: the board fixes them)
  --initrd FILE     initramfs (cpio newc, plain or gzip); default: scripts/rootfs packed
  --append "ARGS"   kernel command line, e.g. "loglevel=8 init=/other.rc"
  --firmware STACK  on virt: uefi (Debian's EDK2, QEMU_EFI.fd, with acpi=off: it starts the
                    Image through its EFI stub, with -initrd and -append as LoadFile2 and
                    LoadOptions), or uboot (Debian's U-Boot booti's the Image, preloaded,
                    with --append as bootargs).
                    On raspi4b, a Pi 4 firmware stack from Debian's packages
                    (scripts/rpi4-firmware.sh): tfa (TF-A's BL31 as the armstub: PSCI),
                    uboot (U-Boot booti), tfa+uboot, or tfa-board (BL31 unpatched: QEMU
                    then loses every CPU that makes PSCI CPU_OFF)
  --dtb FILE        hand the kernel this DTB as it is (its memory too: --mem must cover it),
                    instead of QEMU's generated one
  --image FILE      boot this Image instead of building one
  --cache-model FILE
                    run under the cache model (tools/cache-model, a QEMU plugin: what real
                    caches would get wrong) and write its report to FILE when QEMU exits
  --gdb             start halted and wait for gdb-multiarch on port 1234
  -h, --help        this text
USAGE
}

el=2 mem=1G smp=1 cpu=cortex-a72 machine=virt initrd="" append="" dtb="" image="" gdb=0 cache_model="" firmware=""
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --el) el=$2; shift 2 ;;
        --mem) mem=$2; shift 2 ;;
        --smp) smp=$2; shift 2 ;;
        --cpu) cpu=$2; shift 2 ;;
        --machine) machine=$2; shift 2 ;;
        --initrd) initrd=$2; shift 2 ;;
        --append) append=$2; shift 2 ;;
        --dtb) dtb=$2; shift 2 ;;
        --image) image=$2; shift 2 ;;
        --cache-model) cache_model=$2; shift 2 ;;
        --firmware) firmware=$2; shift 2 ;;
        --gdb) gdb=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        *) echo "qemu.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
case "$el" in 1|2) ;; *) echo "qemu.sh: --el must be 1 or 2" >&2; exit 2 ;; esac
case "$machine/$firmware" in
    */|raspi4b/*|virt/uefi|virt/uboot) ;;
    *) echo "qemu.sh: --firmware $firmware: virt takes uefi or uboot; raspi4b takes tfa, uboot, tfa+uboot, tfa-board" >&2; exit 2 ;;
esac
edk2=/usr/share/qemu-efi-aarch64/QEMU_EFI.fd
uboot=/usr/lib/u-boot/qemu_arm64/u-boot.bin

if ! command -v qemu-system-aarch64 >/dev/null || ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-none; then
    echo "qemu.sh: installing what is missing (scripts/setup.sh)" >&2
    scripts/setup.sh >&2
fi
[ -n "$image" ] || image=$(scripts/build.sh | tail -n1)
if [ -z "$initrd" ]; then
    initrd=target/rootfs.cpio
    scripts/mkinitramfs.sh scripts/rootfs "$initrd"
fi

# Semihosting lets a panic or an unexpected exception end QEMU with a non-zero status (the
# kernel uses it only when its command line says `semihosting`).
append="semihosting${append:+ $append}"
mach=$machine
[ "$machine" = virt ] && [ "$el" = 2 ] && mach="virt,virtualization=on"
if [ "$machine" = raspi4b ]; then
    # Fixed CPUs (4 x Cortex-A72) and RAM; entered at EL2. Single-threaded TCG: otherwise the
    # secondaries spinning in the firmware stub starve the boot CPU.
    if [ -z "$dtb" ] || [ -n "$firmware" ]; then
        scripts/fixtures.sh >&2
    fi
    if [ -z "$dtb" ]; then
        # With a firmware stack, the DTB is loaded as it is: QEMU does not disable for it
        # what it does not model, so it is the copy with those devices disabled.
        if [ -n "$firmware" ]; then dtb=target/fixtures/rpi4-qemu.dtb; else dtb=target/fixtures/bcm2711-rpi-4-b.dtb; fi
    fi
    # Which UART the kernel will take (README, Real boards): the DTB's stdout-path (a firmware
    # stack's DTB says serial0), unless console= says otherwise. The mini UART is QEMU's
    # second serial port.
    uart=pl011
    if [ -z "$firmware" ] && [[ $(fdtget -t s "$dtb" /chosen stdout-path 2>/dev/null) == serial1* ]]; then
        uart=mini
    fi
    for word in $append; do
        case $word in
            console=ttyS0*|console=serial1*) uart=mini ;;
            console=ttyAMA0*|console=serial0*) uart=pl011 ;;
        esac
    done
    if [ "$uart" = mini ]; then
        serial=(-display none -serial null -serial mon:stdio)
    else
        serial=(-nographic)
    fi
    if [ -n "$firmware" ]; then
        mapfile -t fw_args < <(scripts/rpi4-firmware.sh "$firmware" target/qemu-sh/firmware \
            "$image" "$initrd" "$dtb" "$append")
        [ ${#fw_args[@]} -gt 0 ] || exit 2
        args=(-M raspi4b "${serial[@]}" -no-reboot "${fw_args[@]}")
    else
        args=(-M raspi4b -accel tcg,thread=single "${serial[@]}" -no-reboot -kernel "$image" -initrd "$initrd")
        args+=(-append "$append" -dtb "$dtb")
    fi
elif [ -n "$dtb" ]; then
    # The DTB as it is: loaded with the Image and the initrd, entered through a shim.
    mapfile -t dtb_args < <(scripts/dtb-as-is.sh target/qemu-sh "$dtb" "$image" "$append" "$initrd")
    [ ${#dtb_args[@]} -gt 0 ] || exit 2
    args=(-M "$mach" -cpu "$cpu" -m "$mem" -smp "$smp" -nographic -nic none -no-reboot "${dtb_args[@]}")
else
    if [ "$firmware" = uefi ]; then
        [ -f "$edk2" ] || scripts/setup.sh >&2
        # acpi=off: EDK2 then publishes QEMU's DTB, which the EFI stub needs.
        mach="$mach,acpi=off"
    fi
    args=(-M "$mach" -cpu "$cpu" -m "$mem" -smp "$smp" -nographic -nic none -no-reboot)
    if [ "$firmware" = uboot ]; then
        [ -f "$uboot" ] || scripts/setup.sh >&2
        case "$append" in *"'"*) echo "qemu.sh: --firmware uboot: --append cannot hold a single quote" >&2; exit 2 ;; esac
        # QEMU's own DTB for this machine, with a /config bootcmd that U-Boot runs at once:
        # booti the Image and initrd preloaded at U-Boot's kernel_addr_r / ramdisk_addr_r.
        mkdir -p target/qemu-sh
        ubdtb=target/qemu-sh/uboot.dtb
        qemu-system-aarch64 -M "$mach,dumpdtb=$ubdtb" -cpu "$cpu" -m "$mem" -smp "$smp" \
            -nographic -nic none </dev/null >/dev/null
        rd_size=$(printf %x "$(stat -c %s "$initrd")")
        fdtput -c "$ubdtb" /config
        fdtput -t s "$ubdtb" /config bootcmd \
            "setenv bootargs '$append'; booti 0x40400000 0x44000000:$rd_size \${fdtcontroladdr}"
        fdtput -t i "$ubdtb" /config bootdelay 0
        args+=(-bios "$uboot" -dtb "$ubdtb"
               -device "loader,file=$image,addr=0x40400000,force-raw=on"
               -device "loader,file=$initrd,addr=0x44000000,force-raw=on")
    else
        args+=(-kernel "$image" -initrd "$initrd" -append "$append")
        [ "$firmware" = uefi ] && args+=(-bios "$edk2")
    fi
fi
args+=(-semihosting-config enable=on,target=native)
if [ -n "$cache_model" ]; then
    plugin=$(tools/cache-model/build.sh | tail -n1),out=$cache_model
    # Several CPUs on virt: round-robin TCG, where the model tells CPUs apart by VMPIDR_EL2;
    # without EL2 there is no such register, so multi-threaded TCG and QEMU's own vCPU index.
    # (raspi4b runs round-robin already.)
    if [ "$machine" = virt ] && [ "$smp" != 1 ]; then
        if [ "$el" = 1 ]; then
            args+=(-accel tcg,thread=multi); plugin+=,cpus=index
        else
            args+=(-accel tcg,thread=single)
        fi
    fi
    args+=(-plugin "$plugin")
fi
if [ "$gdb" = 1 ]; then
    elf=${image%.Image}
    args+=(-S -gdb tcp::1234)
    cat >&2 <<MSG
qemu.sh: QEMU is waiting for gdb. In another terminal:
  gdb-multiarch $elf -ex 'target remote :1234'
The kernel's symbols are at their linked (virtual) addresses, valid once the MMU is on
(break kernel_main). For the MMU-off entry code, add them again at the load address:
  (gdb) add-symbol-file $elf -o (0x40200000 - 0xffff800000000000)    # virt's load address
MSG
fi
exec qemu-system-aarch64 "${args[@]}" "${extra[@]}"
