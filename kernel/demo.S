/*
 * capOS demo kernel: a multiboot2 payload that reports on COM1 which
 * firmware path it was booted through, then powers the machine off.
 *
 * Built by crates/image/build.rs with GNU as (--32) and ld (elf_i386).
 * The build assembles this file twice, the second time with
 * `--defsym NO_LANDMARK=1`, to get a kernel that never prints the
 * landmark (used by the boot tests to check failure detection).
 */

        .set MB2_MAGIC,        0xE85250D6
        .set MB2_ARCH_I386,    0
        .set MB2_BOOT_MAGIC,   0x36D76289
        .set MB2_TAG_CMDLINE,  1
        .set MB2_TAG_EFI32,    11
        .set MB2_TAG_EFI64,    12
        .set COM1,             0x3F8

        .section .multiboot2, "a"
        .balign 8
mb2_header:
        .long MB2_MAGIC
        .long MB2_ARCH_I386
        .long mb2_header_end - mb2_header
        .long -(MB2_MAGIC + MB2_ARCH_I386 + (mb2_header_end - mb2_header))
        /* end tag */
        .word 0
        .word 0
        .long 8
mb2_header_end:

        .section .text
        .code32
        .globl _start
_start:
        cli
        cld
        movl $stack_top, %esp
        movl %eax, %edi                 /* boot magic */
        movl %ebx, %esi                 /* boot information address */

        call serial_init
        movl $msg_start, %eax
        call serial_puts

        cmpl $MB2_BOOT_MAGIC, %edi
        jne not_multiboot2

        /* Walk the boot information tags: u32 total_size, u32 reserved,
         * then tags {u32 type, u32 size} padded to 8 bytes, type 0 ends.
         * Note an EFI system table tag (11 or 12: GRUB came through UEFI)
         * and the command line tag (1). */
        movl $0, efi_found
        movl $0, cmdline_ptr
        movl (%esi), %ecx               /* total size */
        cmpl $16, %ecx
        jb not_multiboot2
        leal (%esi,%ecx), %edx          /* end of the information */
        leal 8(%esi), %ebx
next_tag:
        leal 8(%ebx), %eax
        cmpl %edx, %eax
        ja tags_done
        movl (%ebx), %eax               /* type */
        testl %eax, %eax
        jz tags_done
        cmpl $MB2_TAG_CMDLINE, %eax
        jne 1f
        leal 8(%ebx), %ecx
        movl %ecx, cmdline_ptr
1:      cmpl $MB2_TAG_EFI32, %eax
        je 2f
        cmpl $MB2_TAG_EFI64, %eax
        jne 3f
2:      movl $1, efi_found
3:      movl 4(%ebx), %eax              /* size */
        cmpl $8, %eax
        jb tags_done
        addl $7, %eax
        andl $~7, %eax
        addl %eax, %ebx
        jmp next_tag

tags_done:
        movl $msg_bios, %eax
        cmpl $0, efi_found
        je 4f
        movl $msg_uefi, %eax
4:      call serial_puts
        movl cmdline_ptr, %eax
        testl %eax, %eax
        jz power_off
        pushl %eax
        movl $msg_cmdline, %eax
        call serial_puts
        popl %eax
        call serial_puts
        movl $msg_crlf, %eax
        call serial_puts
        jmp power_off

not_multiboot2:
        movl $msg_unknown, %eax
        call serial_puts

power_off:
.ifdef NO_LANDMARK
        /* The test kernel stays up so that a harness waiting for the
         * landmark runs into its timeout rather than seeing QEMU exit. */
        jmp halt
.endif
        movl $msg_off, %eax
        call serial_puts
        /* ACPI S5 through the PM1a control block QEMU's pc/q35 machines
         * expose at 0x604 (SeaBIOS and OVMF both put it there). */
        movw $0x604, %dx
        movw $0x2000, %ax
        outw %ax, %dx
        /* isa-debug-exit, when the harness adds one at 0xf4. */
        movw $0xF4, %dx
        movb $0x10, %al
        outb %al, %dx
halt:
        cli
        hlt
        jmp halt

/* 115200 baud, 8N1, FIFO on. */
serial_init:
        movw $COM1 + 1, %dx
        xorb %al, %al
        outb %al, %dx                   /* no interrupts */
        movw $COM1 + 3, %dx
        movb $0x80, %al
        outb %al, %dx                   /* DLAB on */
        movw $COM1 + 0, %dx
        movb $1, %al
        outb %al, %dx                   /* divisor 1 = 115200 */
        movw $COM1 + 1, %dx
        xorb %al, %al
        outb %al, %dx
        movw $COM1 + 3, %dx
        movb $0x03, %al
        outb %al, %dx                   /* 8N1, DLAB off */
        movw $COM1 + 2, %dx
        movb $0xC7, %al
        outb %al, %dx                   /* FIFO */
        movw $COM1 + 4, %dx
        movb $0x03, %al
        outb %al, %dx                   /* DTR, RTS */
        ret

/* Print the NUL-terminated string at %eax. */
serial_puts:
        pushl %esi
        movl %eax, %esi
1:      movb (%esi), %cl
        testb %cl, %cl
        jz 3f
        movw $COM1 + 5, %dx
2:      inb %dx, %al
        testb $0x20, %al                /* transmitter holding register empty */
        jz 2b
        movw $COM1, %dx
        movb %cl, %al
        outb %al, %dx
        incl %esi
        jmp 1b
3:      popl %esi
        ret

        .section .rodata
msg_start:
.ifdef NO_LANDMARK
        .asciz "\r\ncapos test kernel: no landmark here\r\n"
.else
        .asciz "\r\ncapos kernel starting\r\n"
.endif
msg_uefi:
        .asciz "capos demo kernel: firmware=uefi\r\n"
msg_bios:
        .asciz "capos demo kernel: firmware=bios\r\n"
msg_unknown:
        .asciz "capos demo kernel: firmware=unknown (not multiboot2)\r\n"
msg_cmdline:
        .asciz "capos demo kernel: cmdline="
msg_crlf:
        .asciz "\r\n"
msg_off:
        .asciz "capos demo kernel: powering off\r\n"

        .section .bss
        .balign 16
efi_found:
        .skip 4
cmdline_ptr:
        .skip 4
        .balign 16
stack_bottom:
        .skip 4096
stack_top:
