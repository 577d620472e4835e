#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

# The suboptions of guests (and, through the YAML alias, of defaults) are
# virt_install_domain's options without their top-level defaults; a unit test keeps them in
# step with virt_install_domain's DOCUMENTATION.
DOCUMENTATION = r"""
---
module: virt_install_domains
short_description: Many libvirt guests in one task, created, started and installed in parallel
version_added: 1.1.0
description:
  - Converges a whole list of guests (each item takes the options of
    M(kvmops.hypervisor.virt_install_domain)) in one module run over one libvirt connection.
  - Every guest is planned and checked first, without side effects (its manager in check
    mode). When one guest cannot be made (a missing ISO, kernel or backing image, an image
    that exists with another size than asked for, a name held by a domain that kvmops did not
    create while the guest asks for an install, two guests sharing a writable image or a
    name, bad options), the run fails before anything is created, and the error names every
    such guest.
  - Then the guests that need a change are defined, get their disks, start and install in
    parallel, at most O(parallel) at a time; each guest's install phase waits on its own
    (O(guests[].wait)). A guest whose plan changes nothing is not touched again.
  - Volume creation in one storage pool is serialised (libvirt refuses concurrent jobs on a
    pool, "has asynchronous jobs running", which is also retried when another tool holds the
    pool); one install source is fetched into its cache once, by the first guest that needs it.
  - When a guest fails during the run the others still finish; the task then fails, naming
    each failed guest with its error, and RV(guests) holds every guest's result.
author:
  - kvmops team (@kvmops)
extends_documentation_fragment:
  - kvmops.hypervisor.libvirt
  - kvmops.hypervisor.attributes
  - kvmops.hypervisor.attributes.actiongroup_kvm
  - kvmops.hypervisor.attributes.idempotent
attributes:
  check_mode:
    support: full
    details: Check mode plans every guest and creates nothing at all.
  diff_mode:
    support: full
    details: One diff per changed guest (the affected elements of its persistent XML, passwords masked).
  idempotent:
    support: full
options:
  guests:
    description:
      - The guests, each a dictionary of M(kvmops.hypervisor.virt_install_domain)'s options
        (O(guests[].name) required). Options an item leaves unset come from O(defaults), then
        from virt_install_domain's defaults.
    type: list
    elements: dict
    required: true
    suboptions: &guest_options
      name:
        description: Name of the domain (C(--name)); required in every item of O(guests), never in O(defaults).
        type: str
      state:
        description:
          - V(running) defines the domain when needed and starts it (virt-install's behaviour).
          - V(stopped) defines it when needed and shuts it down cleanly (ACPI, bounded by O(guests[].shutdown_timeout)).
          - V(present) defines or updates it and leaves its power state alone.
          - V(absent) stops it, undefines it (with its UEFI NVRAM) and keeps its disks unless O(guests[].remove_storage).
        type: str
        choices:
          - running
          - stopped
          - present
          - absent
      memory:
        description:
          - Memory in MiB (C(--ram)/C(--memory)), or a string with a unit such as V(2GiB) or V(512MiB).
          - New domains get 1024 MiB when unset. A changed value is applied to the persistent definition; a
            running guest then reports RV(guests[].restart_required).
        type: raw
      vcpus:
        description: Number of virtual CPUs (C(--vcpus)); new domains get 1 when unset.
        type: int
      cpu:
        description:
          - CPU model (C(--cpu)) - V(host-passthrough), V(host-model) or a model name such as V(Skylake-Server).
            V(host) (the guide's C(--cpu=host)) means V(host-model).
          - Unset leaves libvirt's default. Under QEMU emulation (virt_type qemu) host-passthrough is not available.
        type: str
      virt_type:
        description:
          - Domain type (C(--virt-type)). V(auto) uses V(kvm) only when this host can really run KVM guests
            (see M(kvmops.hypervisor.kvm_capability_facts)), else V(qemu) emulation; the decision and its reasons
            are returned in RV(guests[].virt_type).
          - On an existing domain only an explicit V(kvm) or V(qemu) is compared.
        type: str
        choices:
          - auto
          - kvm
          - qemu
      arch:
        description: Guest architecture (C(--arch)); defaults to the host's. Cannot change on an existing domain.
        type: str
      machine:
        description: Machine type (C(--machine)) such as V(q35) or V(pc); aliases are compared with the canonical
          type libvirt stores.
        type: str
      firmware:
        description:
          - V(bios) or V(uefi) (C(--boot uefi)); UEFI uses libvirt's firmware auto-selection (OVMF).
          - New domains get V(bios) when unset.
        type: str
        choices:
          - bios
          - uefi
      autostart:
        description: Start the domain when the host boots (C(--autostart)). Unset leaves it as it is.
        type: bool
      kernel:
        description:
          - Direct kernel boot as the guest's permanent configuration (C(--boot kernel=)), the path of the kernel
            on the hypervisor. With O(guests[].initrd) and O(guests[].cmdline) it is managed as one unit.
        type: path
      initrd:
        description: Initrd for direct kernel boot (C(--boot initrd=)).
        type: path
      cmdline:
        description: Kernel command line for direct kernel boot (C(--boot kernel_args=)), e.g. V(console=ttyS0).
        type: str
      os_variant:
        description:
          - V(generic), V(linux) or V(windows), or a libosinfo short id (C(--os-variant)) such as
            V(centos7.0), V(debian12), V(freebsd13.0) or V(win2k12r2). The guide's C(--os-type=windows) maps
            here.
          - When libosinfo is on the hypervisor (Debian/Ubuntu C(osinfo-db), C(python3-gi),
            C(gir1.2-libosinfo-1.0); the kvm_host role installs them with C(kvm_host_install_libosinfo)) an id
            is looked up there, as virt-install does - virtio support of disks and NICs, virtio-rng, the guest
            agent channel, q35, the minimum memory (a warning below it), the installer's kernel-url-argument
            (see O(guests[].install.location)) and the id written into the domain's libosinfo metadata.
          - Otherwise, and for ids the installed osinfo-db does not know yet (V(debian12) in osinfo-db 2022),
            the families decide by prefix - V(linux) - virtio disks and NICs, virtio-rng, guest agent channel,
            q35. V(windows) - SATA disks, e1000e NIC, localtime clock, Hyper-V enlightenments (with KVM), q35.
            V(generic) - SATA disks, e1000 NIC, pc. BSDs get virtio disks and NICs. RV(guests[].os_info) says
            which source decided.
          - libosinfo is read only when the module creates a guest or starts its installer; a re-run against
            an existing guest (or a removal) does not load its database.
          - The defaults apply to new domains, and to disks and NICs listed without O(guests[].disks[].bus) or
            O(guests[].networks[].model).
          - A new guest gets the devices virt-install 4.1 gives it - machine q35 (x86, when the OS supports it
            and no disk uses the IDE bus), suspend-to-RAM/disk off, the QEMU guest agent channel and
            virtio-rng (from /dev/urandom) when the OS has the drivers, C(discard=unmap) on sparse images, a
            USB tablet with graphics. Not copied - 14 spare PCIe root ports (libvirt adds the ones the devices
            need) and Hyper-V enlightenments under TCG (QEMU without KVM has none).
          - An existing domain keeps the devices it was defined with - the module compares only what the
            options ask for, so a guest defined with older defaults (machine pc, no agent channel) stays
            unchanged on a re-run.
        type: str
      disks:
        description:
          - The domain's disks and CD-ROMs (C(--disk)), in order. Given, the list is the complete set of disks
            in the definition (images of disks dropped from it are kept). Unset leaves the disks of an existing
            domain alone.
        type: list
        elements: dict
        suboptions:
          path:
            description: Absolute path of the image file (or ISO for a CD-ROM).
            type: str
          pool:
            description: Storage pool holding O(guests[].disks[].volume) (instead of O(guests[].disks[].path)).
            type: str
          volume:
            description: Volume name in O(guests[].disks[].pool); created when missing.
            type: str
          size:
            description:
              - Size in GiB like virt-install (may be fractional), used when the image is created.
              - A size larger than an existing image is reported as a warning and in RV(guests[].disks); images are never
                resized.
            type: float
          format:
            description: Image format; V(raw) for new images (as in the guide). An existing image's format is
              detected and must match.
            type: str
            choices:
              - raw
              - qcow2
          sparse:
            description: Create a sparse image (no allocation). V(false) preallocates.
            type: bool
            default: true
          backing_store:
            description: Base image of a qcow2 copy-on-write clone (created at once whatever its size; the base
              is never written).
            type: str
          bus:
            description: Disk bus; the default comes from O(guests[].os_variant).
            type: str
            choices:
              - virtio
              - sata
              - scsi
              - ide
              - usb
          cache:
            description: Cache mode of the disk.
            type: str
            choices:
              - default
              - none
              - writethrough
              - writeback
              - directsync
              - unsafe
          device:
            description: V(disk) or V(cdrom).
            type: str
            choices:
              - disk
              - cdrom
            default: disk
          readonly:
            description: Attach read-only (always true for a CD-ROM).
            type: bool
      networks:
        description:
          - Network interfaces (C(--network)), in order. Unset creates one NIC on libvirt's V(default) network
            for a new domain and leaves an existing domain's NICs alone.
          - Without O(guests[].networks[].mac) the MAC libvirt generated is kept forever.
        type: list
        elements: dict
        suboptions:
          network:
            description: A libvirt network such as V(default) (C(--network network=default)).
            type: str
          bridge:
            description: A host bridge such as V(br0) (C(--network bridge=br0), the guide's C(bridge:br0)).
            type: str
          direct:
            description: A host interface for macvtap (C(--network type=direct,source=eth0)).
            type: str
          mode:
            description: macvtap mode for O(guests[].networks[].direct).
            type: str
            choices:
              - bridge
              - vepa
              - private
              - passthrough
          model:
            description: NIC model such as V(virtio) or V(e1000e); the default comes from O(guests[].os_variant).
            type: str
          mac:
            description: Fixed MAC address.
            type: str
      graphics:
        description:
          - Graphical console (C(--graphics)). Unset gives a new domain VNC with libvirt's defaults and leaves
            an existing domain's graphics alone.
        type: dict
        suboptions:
          type:
            description: V(none) (serial console only, like C(--graphics none)), V(vnc) or V(spice).
            type: str
            choices:
              - none
              - vnc
              - spice
            default: vnc
          listen:
            description:
              - Listen address. Unset leaves it to qemu.conf (vnc_listen, 127.0.0.1 by default). Listening on
                a public address without TLS is insecure; prefer an SSH tunnel.
            type: str
          port:
            description: Fixed port (5900-65535), or V(-1) for autoport (the default for new domains).
            type: int
          password:
            description:
              - Console password, written into the XML (never on a command line, never returned).
              - VNC authentication uses at most 8 bytes; longer VNC passwords fail before anything changes (libvirt
                8.x and later refuse them), and the module warns when a password-protected VNC console listens
                on a non-loopback address.
            type: str
          keymap:
            description: Keymap such as V(en-us) or V(de).
            type: str
          allow_insecure:
            description:
              - Allow VNC to listen on a non-loopback O(guests[].graphics.listen) although qemu.conf has
                no C(vnc_tls). Without it such a listen fails before anything changes (the same rule as
                M(kvmops.hypervisor.vnc_listen) for the host setting and per-guest listens).
            type: bool
            default: false
      serial:
        description:
          - V(pty) (default for new domains) or an absolute path of a log file that receives the guest's serial
            console (written by virtlogd, truncated when the guest starts).
        type: str
      remove_storage:
        description: With O(guests[].state=absent), also delete the domain's writable disk images and volumes (never
          CD-ROMs or read-only images).
        type: bool
      update:
        description:
          - V(true) redefines the persistent definition of an existing domain that differs from the options;
            a running domain then reports RV(guests[].restart_required).
          - V(false) only reports the differences (as a warning and in RV(guests[].differences)).
        type: bool
      restart:
        description: Apply an updated definition to a running domain right away by a clean shutdown (bounded
          by O(guests[].shutdown_timeout)) and a start.
        type: bool
      shutdown_timeout:
        description: Seconds to wait for a clean ACPI shutdown before failing (the guest is never powered off
          by force).
        type: int
      install:
        description:
          - How the guest's operating system gets onto its disks, like virt-install's C(--location), C(--cdrom),
            C(--import) and C(--pxe). Give exactly one of O(guests[].install.location), O(guests[].install.cdrom), O(guests[].install.import)
            or O(guests[].install.pxe).
          - For O(guests[].install.location), O(guests[].install.cdrom) and O(guests[].install.pxe) the domain's persistent definition
            is the FINAL one (it boots from its disk). When this module creates the domain it marks the install
            as pending in the domain's metadata; with O(guests[].state=running) it starts the domain once from a transient
            install configuration (the installer's kernel and initrd booted directly, the CD-ROM first, or the
            network first) with C(on_reboot=destroy), so the installer's reboot ends the install phase.
          - With O(guests[].wait) the module waits for that end, then starts the final configuration, so the next task
            finds the installed guest running. A later run finds the install completed in the metadata and never
            installs again; a run after an install that nobody waited for starts the final configuration.
          - O(guests[].state=present) and O(guests[].state=stopped) define the domain and leave the install pending until a run
            with O(guests[].state=running).
          - An existing domain that this module did not create (no install record) is never installed over;
            the module warns instead.
        type: dict
        suboptions:
          location:
            description:
              - An install tree (C(--location)) - an http, https or ftp URL, a directory on the hypervisor, or
                an ISO image on the hypervisor that holds one.
              - Layouts found - RHEL, CentOS, Fedora, Rocky and Alma (C(.treeinfo), C(images/pxeboot/vmlinuz)
                and C(initrd.img)), Debian and Ubuntu netboot (give
                C(.../dists/<suite>/main/installer-<arch>/); one level up or down works too), openSUSE/SLES
                (C(boot/<arch>/loader/linux) and C(initrd)), and installer DVDs (C(isolinux/),
                C(install.amd/), C(casper/)).
              - The kernel and initrd are copied into O(guests[].install.cache_dir) under a directory keyed by
                the location and the architecture, checked against their size and SHA-256 (and the checksums
                of C(.treeinfo) when it has them), written to a temporary file and renamed into place. A later
                run uses the cache without any network traffic.
              - An ISO needs xorriso, bsdtar or isoinfo on the hypervisor; it is also attached as a CD-ROM
                while the installer runs (like virt-install).
              - Like virt-install, the installer is told where its tree is (libosinfo's kernel-url-argument) -
                for an http(s)/ftp location the module appends V(inst.repo=<location>) for RHEL, CentOS and
                Fedora 7 and later, V(method=<location>) for older ones, V(install=<location>) for
                openSUSE/SLES, and nothing for Debian and Ubuntu (their netboot initrd asks for a mirror),
                unless O(guests[].install.extra_args) already names a source (C(inst.repo=), C(repo=),
                C(method=), C(inst.stage2=), C(install=)). Which one is decided by the tree's C(.treeinfo)
                (family and version), else O(guests[].os_variant), else the layout found; RV(guests[].install)
                returns it as C(source_argument) and C(source_argument_decided_by).
              - An ISO needs nothing more (the installer looks at its CD-ROM). A directory on the hypervisor
                cannot be reached from inside the guest - a RHEL or SUSE tree there gets a warning, serve it
                over HTTP or name a reachable source in O(guests[].install.extra_args).
            type: str
          cdrom:
            description:
              - An installer ISO on the hypervisor (C(--cdrom)), attached as a CD-ROM and booted first during
                the install phase only. The final definition does not contain it, so the guest never boots the
                installer again. If a multi-stage installer needs the medium after its first reboot, also list
                the ISO in O(guests[].disks) with O(guests[].disks[].device=cdrom) (the final definition boots from the disk first).
            type: path
          import:
            description:
              - Boot an existing disk image (C(--import)) - the first entry of O(guests[].disks) must exist. There is
                no install phase.
            type: bool
          pxe:
            description: Boot from the network first during the install phase (C(--pxe)); the domain needs a
              NIC.
            type: bool
          extra_args:
            description:
              - Kernel arguments for the installer (C(--extra-args)), only with O(guests[].install.location),
                e.g. V(console=tty0 console=ttyS0,115200) to follow the installer on the serial console, or
                V(inst.ks=http://server/ks.cfg).
              - The LAST C(console=) becomes /dev/console, where the installer writes. With VNC or spice
                graphics and a serial console last the VNC screen stops at the last boot message; the module
                warns then (put V(console=tty0) last, or use O(guests[].graphics.type=none) and C(virsh
                console)).
            type: str
          kickstart:
            description:
              - A kickstart, preseed or AutoYaST file on the hypervisor, injected at the root of a copy of the
                installer's initrd (C(--initrd-inject)), only with O(guests[].install.location).
              - Unless O(guests[].install.extra_args) already names one, the installer is pointed at it with C(inst.ks=file:/<name>)
                (RHEL family), C(preseed/file=/<name>) (Debian/Ubuntu; a file named C(preseed.cfg) is read by
                itself) or C(autoyast=file:///<name>) (openSUSE).
              - Its content is never logged or returned; the injected copy is mode 0600 and is removed once
                the install phase has ended.
            type: path
          cache_dir:
            description: Where fetched kernels and initrds are kept (QEMU must be able to read them).
            type: path
            default: /var/lib/libvirt/boot/kvmops
          validate_certs:
            description: Verify TLS certificates of an https O(guests[].install.location).
            type: bool
            default: true
          timeout:
            description: Network timeout in seconds for each request to O(guests[].install.location).
            type: int
            default: 30
      wait:
        description:
          - With O(guests[].install), how long to wait for the install phase to end (C(--wait)) - a number of
            seconds, or a number with a unit V(30s), V(90m), V(1h), V(1d). A bare number counts SECONDS
            (virt-install's C(--wait) counts minutes - its C(--wait 60) is V(60m) here). V(0) returns once the
            installer has started, V(-1) waits without limit.
          - Once the installer has ended (its reboot stops the domain - C(on_reboot=destroy) during the
            install phase) the module starts the final configuration, so a Windows Setup or anaconda that
            reboots goes on booting from the disk within the same task.
          - Without O(guests[].wait) (or with V(0)) the task returns while the installer runs; after its first
            reboot the guest stays shut off until the next run with O(guests[].state=running), which starts
            the final configuration.
          - When the time runs out, RV(guests[].install_phase) is V(timed_out) (with a warning, not a
            failure); a later run finishes the job.
        type: raw

  defaults:
    description:
      - Options every guest gets unless it sets them itself; top-level keys only (a guest's
        O(guests[].disks) or O(guests[].install) replaces the default's as a whole, as the
        guests role's C(combine) does). Never O(guests[].name). A guest cannot unset what
        O(defaults) sets (null means unset); leave such an option out of O(defaults).
    type: dict
    suboptions: *guest_options
  preflight:
    description:
      - What the run does with the plan of every guest (made first, without side effects),
        and with the preflight of the media of the guests it creates - kernel, initrd,
        CD-ROM disks, backing images, O(guests[].install.location) (a URL gets one GET, with
        O(guests[].install.validate_certs) and O(guests[].install.timeout), unless its tree is
        in the cache already), O(guests[].install.cdrom) and O(guests[].install.kickstart).
      - V(fail) - a guest that cannot be made fails the run before anything is created, then
        the guests are converged; RV(preflight) comes with the failure.
      - V(report) - check mode only (C(check_mode=true) on the task). The plan is the whole
        run, and a guest that cannot be made does not fail it - RV(guests[].failed) and
        RV(guests[].msg) say why, RV(preflight.media) lists every missing, unreadable or
        unreachable medium. What check mode cannot plan yet is deferred, not failed, and
        listed in RV(preflight.deferred) (not in RV(guests)) - a guest with a new image in a
        directory that does not exist yet, and every guest when libvirt is not installed or
        does not answer yet (a bare host before its libvirt is installed). The guests role
        checks its guests this way before any of them starts.
    type: str
    choices: [fail, report]
    default: fail
  parallel:
    description:
      - How many guests are worked on at a time. Default - twice the host's CPUs, at least 4.
      - A guest waiting for its installer (O(guests[].wait)) holds its place until the
        install ends, so give at least as many as guests install side by side.
    type: int
notes:
  - Requires libvirt-python and python3-lxml on the managed host, and qemu-img to create qcow2 images.
  - Guests without an install source never load the install-media code.
  - A long O(guests[].wait) keeps the task open; with V(-1) consider Ansible's C(async).
seealso:
  - module: kvmops.hypervisor.virt_install_domain
requirements:
  - python3-lxml
"""

EXAMPLES = r"""
# The guide's two guests, installing side by side (each waits for its own installer):
- name: CentOS 7 and Windows 2012 at once
  kvmops.hypervisor.virt_install_domains:
    defaults:
      networks:
        - bridge: br0
    guests:
      - name: vm1
        memory: 1024
        os_variant: centos7.0
        disks:
          - path: /vm-images/vm1.img
            size: 10
            format: raw
        graphics:
          type: none
        install:
          location: http://mirror.example.org/centos/7/os/x86_64/
          extra_args: console=tty0 console=ttyS0,115200
        wait: 3600
      - name: windows1
        memory: 2GiB
        cpu: host
        vcpus: 2
        os_variant: win2k12r2
        disks:
          - path: /vm-images/windows1.img
            size: 40
        graphics:
          type: vnc
          password: "{{ vault_vnc_password }}"
        install:
          cdrom: /var/lib/libvirt/boot/win2012.iso
        wait: 7200

# Ten tiny guests from one template, four at a time
- name: A lab of ten guests
  kvmops.hypervisor.virt_install_domains:
    parallel: 4
    defaults:
      memory: 256MiB
      virt_type: qemu
      os_variant: linux
      kernel: /var/lib/libvirt/boot/vmlinuz
      initrd: /var/lib/libvirt/boot/initrd.img
      cmdline: console=ttyS0
      networks:
        - network: default
      graphics:
        type: vnc
        listen: 127.0.0.1
    guests: "{{ query('ansible.builtin.sequence', 'start=1 end=10 format=lab%02d')
                | map('community.general.dict_kv', 'name') | list }}"
  register: lab

- name: Which guests changed
  ansible.builtin.debug:
    msg: "{{ lab.summary.changed_guests }}"

# Remove a whole list of guests with their disk images
- name: The lab is gone
  kvmops.hypervisor.virt_install_domains:
    defaults:
      state: absent
      remove_storage: true
    guests:
      - name: lab01
      - name: lab02
"""

RETURN = r"""
guests:
  description:
    - One result per guest, in the order of O(guests) - the fields
      M(kvmops.hypervisor.virt_install_domain) returns, plus RV(guests[].elapsed), and
      RV(guests[].failed) and RV(guests[].msg) for a guest that failed.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Name of the domain.
      type: str
      sample: vm1
    changed:
      description: Whether this guest changed (or would in check mode).
      type: bool
    failed:
      description: This guest failed; RV(guests[].msg) says why.
      type: bool
      returned: when the guest failed
    msg:
      description: The guest's error.
      type: str
      returned: when the guest failed
    state:
      description: Power state after the run (running, stopped, paused, crashed, suspended or absent).
      type: str
    uuid:
      description: UUID of the domain (null when absent, or in check mode before it exists).
      type: str
    xml:
      description: The persistent XML after the run, without secrets.
      type: str
    vnc:
      description: The VNC console - listen address, port and display.
      type: dict
    serial:
      description: Path of the serial console (pty or log file).
      type: str
    restart_required:
      description: The persistent definition changed while the domain runs; a cold restart applies it.
      type: bool
    differences:
      description: What differed from the options (item, before, after), passwords masked.
      type: list
      elements: dict
    actions:
      description: What the run did (or would do in check mode) for this guest.
      type: list
      elements: str
      sample: ["created disk /var/lib/libvirt/images/vm1.img", "defined", "started"]
    disks:
      description: One entry per disk - action (create, exists, none), format, size_gib.
      type: list
      elements: dict
    virt_type:
      description: The domain type decision - requested, domain_type and the reasons.
      type: dict
      returned: when the domain is created or compared
    install_phase:
      description: Where the install stands - started, completed, timed_out, pending or none.
      type: str
      returned: when the guest has an install
    install:
      description: The install source and, for a location, the cached kernel and initrd.
      type: dict
      returned: when the guest has an install
    os_info:
      description:
        - What O(guests[].os_variant) means for a new guest and which source decided (V(libosinfo) or V(families)),
          as virt_install_domain returns it.
      type: dict
      returned: when the guest was planned
    warnings:
      description: This guest's warnings (also shown as the task's warnings, prefixed with its name).
      type: list
      elements: str
      returned: when the guest has warnings
    elapsed:
      description: Seconds spent on this guest (its plan and, when it changed, its run).
      type: float
preflight:
  description: What the preflight found (O(preflight)).
  returned: always, and with the failure of a guest's plan
  type: dict
  contains:
    media:
      description:
        - One entry per medium of a new guest that cannot be used - C(guest), C(option)
          (V(install.cdrom), V(disks[1].path), ...), C(source) (the path or URL), C(problem)
          (a few words, V(no such file), V(not readable), V(not an ISO 9660 or UDF image),
          V(HTTP 404 Not Found), V([Errno 111] Connection refused)) and C(msg) (with the fix).
      type: list
      elements: dict
      sample: [{"guest": "vm2", "option": "install.cdrom", "source": "/vm-images/iso/w2012.iso",
                "problem": "no such file", "msg": "install.cdrom=/vm-images/iso/w2012.iso cannot be used (no such file): ..."}]
    deferred:
      description:
        - O(preflight=report) only - the guests check mode cannot plan yet, each C(guest),
          C(reason) (V(directory) or V(libvirt)) and C(msg).
      type: list
      elements: dict
      sample: [{"guest": "vm1", "reason": "directory",
                "msg": "its image directory /vm-images (disks[0]) does not exist yet; ..."}]
summary:
  description: Counts and names over all guests, the workers used and the module's own time.
  returned: always
  type: dict
  contains:
    total:
      description: Number of guests.
      type: int
    changed:
      description: Number of guests that changed.
      type: int
    unchanged:
      description: Number of guests left as they were.
      type: int
    failed:
      description: Number of guests that failed.
      type: int
    changed_guests:
      description: Names of the guests that changed.
      type: list
      elements: str
    failed_guests:
      description: Names of the guests that failed.
      type: list
      elements: str
    parallel:
      description: Workers used.
      type: int
    elapsed:
      description: Seconds from the plan to the last guest.
      type: float
  sample: {"total": 10, "changed": 1, "unchanged": 9, "failed": 0, "changed_guests": ["lab3"],
           "failed_guests": [], "parallel": 4, "elapsed": 0.71}
"""

import sys

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.argspec import uri_option
from ansible_collections.kvmops.hypervisor.plugins.module_utils._common.errors import KvmopsError
from ansible_collections.kvmops.hypervisor.plugins.module_utils._domain import argspec as dargspec
from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.connection import (
    HAS_LIBVIRT, LibvirtConnectionError, connection, fail_on_missing_libvirt)

from ansible_collections.kvmops.hypervisor.plugins.module_utils._libvirt.xml import HAS_LXML

try:
    from ansible_collections.kvmops.hypervisor.plugins.module_utils._domain import batch
except ImportError:  # pragma: no cover - lxml missing: reported through HAS_LXML
    batch = None


def argument_spec():
    """guests and defaults take one guest's options without their top-level defaults, so
    an unset option can come from defaults; batch.prepare() applies the real defaults."""
    options = dargspec.without_defaults(dargspec.guest_options())
    return dict(
        guests=dict(type='list', elements='dict', required=True, options=options),
        defaults=dict(type='dict', options=dargspec.without_defaults(dargspec.guest_options())),
        parallel=dict(type='int'),
        preflight=dict(type='str', default='fail', choices=list(dargspec.PREFLIGHT_MODES)),
        uri=uri_option(),
    )


def defer_all(module, why):
    """preflight=report when libvirt is not there yet: nothing can be planned, nothing fails."""
    names = [g.get('name') for g in module.params['guests']]
    module.exit_json(changed=False, guests=[], summary={
        'total': 0, 'changed': 0, 'unchanged': 0, 'failed': 0, 'changed_guests': [],
        'failed_guests': [], 'parallel': 0, 'elapsed': 0.0},
        preflight={'media': [], 'deferred': [
            {'guest': name, 'reason': 'libvirt', 'msg': why} for name in names]})


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    report = module.params['preflight'] == 'report'
    if report and not module.check_mode:
        module.fail_json(msg='preflight=report plans only and needs check mode: set '
                         'check_mode: true on the task (or preflight=fail to converge).')
    if report and not (HAS_LIBVIRT and HAS_LXML):
        defer_all(module, 'libvirt is not installed yet (no %s for %s on this host); check '
                  'mode cannot plan the guest before a real run installs it'
                  % ('libvirt-python' if not HAS_LIBVIRT else 'python3-lxml', sys.executable))
    fail_on_missing_libvirt(module)
    if not HAS_LXML:
        from ansible.module_utils.basic import missing_required_lib
        module.fail_json(msg=missing_required_lib('lxml') + ' (Debian/Ubuntu: python3-lxml, '
                         'RHEL/Fedora: python3-lxml)')
    parallel = module.params['parallel']
    if parallel is not None and parallel < 1:
        module.fail_json(msg='parallel=%s: give at least 1 (or leave it unset).' % parallel)
    try:
        guests = batch.prepare(module.params['guests'], module.params['defaults'],
                               collect=report)
        for g in guests:
            warning = g.spec and dargspec.vnc_password_warning(g.spec)
            if warning:
                module.warn('%s: %s' % (g.name, warning))
        with connection(module.params['uri']) as conn:
            result = batch.Batch(conn, guests, parallel=parallel, check_mode=module.check_mode,
                                 diff_mode=module._diff, run_command=module.run_command,
                                 qemu_img=module.get_bin_path('qemu-img'),
                                 preflight=module.params['preflight']).run()
    except LibvirtConnectionError as exc:
        if not report:
            module.fail_json(**exc.fail_kwargs())
        defer_all(module, 'libvirt does not answer yet: %s' % exc)
    except KvmopsError as exc:
        for w in exc.result.pop('warnings', []):
            module.warn(w)
        module.fail_json(**exc.fail_kwargs())
    for w in result.pop('warnings'):
        module.warn(w)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
