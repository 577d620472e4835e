# -*- coding: utf-8 -*-
# Copyright: kvmops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import re

import yaml


def _batch(documentation):
    """One guest's options as virt_install_domains' guests[] elements: the same text, without
    the top-level defaults and required (an unset option comes from defaults; batch.prepare()
    applies the real defaults), references moved under guests[]. defaults takes the same
    options and is not documented a second time (one long list, not two).

    A fragment merges only top-level options, shallowly: the module documents guests
    (description, type), this fragment adds its suboptions."""
    options = yaml.safe_load(documentation)['options']
    for option in options.values():
        option.pop('default', None)
        option.pop('required', None)
    text = re.sub(r'\b(O|RV)\(([a-z_]+)', r'\1(guests[].\2', json.dumps(options))
    options = json.loads(text)
    options['name']['description'] = (options['name']['description'].rstrip('.') +
                                      '; required in every item of O(guests), never in '
                                      'O(defaults).')
    return yaml.safe_dump({'options': {'guests': {'suboptions': options}}},
                          default_flow_style=False, sort_keys=False, width=1000)


class ModuleDocFragment(object):
    """The options of one guest: virt_install_domain's (DOCUMENTATION), and the elements of
    virt_install_domains' guests[] (BATCH, derived from the same text; defaults takes the same)."""

    DOCUMENTATION = r'''
options:
  name:
    description: Name of the domain (C(--name)).
    type: str
    required: true
  state:
    description:
      - V(running) defines the domain when needed and starts it (virt-install's behaviour).
      - V(stopped) defines it when needed and shuts it down cleanly (ACPI, bounded by O(shutdown_timeout)).
      - V(present) defines or updates it and leaves its power state alone.
      - V(absent) stops it, undefines it and keeps its disks and its UEFI NVRAM unless O(remove_storage).
    type: str
    choices: [running, stopped, present, absent]
    default: running
  memory:
    description:
      - Memory in MiB (C(--ram)/C(--memory)), or a string with a unit such as V(2GiB) or V(512MiB).
      - New domains get 1024 MiB when unset. A changed value is applied to the persistent
        definition; a running guest then reports RV(restart_required).
    type: raw
  vcpus:
    description: Number of virtual CPUs (C(--vcpus)); new domains get 1 when unset.
    type: int
  cpu:
    description:
      - CPU model (C(--cpu)) - V(host-passthrough), V(host-model) or a model name such as
        V(Skylake-Server). V(host) (the guide's C(--cpu=host)) means V(host-model).
      - Unset leaves libvirt's default. Under QEMU emulation (virt_type qemu) host-passthrough is not available.
    type: str
  virt_type:
    description:
      - Domain type (C(--virt-type)). V(auto) uses V(kvm) only when this host can really run
        KVM guests (see M(kvmops.hypervisor.kvm_capability_facts)), else V(qemu) emulation; the
        decision and its reasons are returned in RV(virt_type).
      - On an existing domain only an explicit V(kvm) or V(qemu) is compared.
    type: str
    choices: [auto, kvm, qemu]
    default: auto
  arch:
    description: Guest architecture (C(--arch)); defaults to the host's. Cannot change on an existing domain.
    type: str
  machine:
    description: Machine type (C(--machine)) such as V(q35) or V(pc); aliases are compared with the canonical type libvirt stores.
    type: str
  firmware:
    description:
      - V(bios) or V(uefi) (C(--boot uefi)); UEFI uses libvirt's firmware auto-selection (OVMF).
      - New domains get V(bios) when unset.
    type: str
    choices: [bios, uefi]
  autostart:
    description: Start the domain when the host boots (C(--autostart)). Unset leaves it as it is.
    type: bool
  kernel:
    description:
      - Direct kernel boot as the guest's permanent configuration (C(--boot kernel=)), the path of
        the kernel on the hypervisor. With O(initrd) and O(cmdline) it is managed as one unit.
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
        V(centos7.0), V(debian12), V(freebsd13.0) or V(win2k12r2). The guide's
        C(--os-type=windows) maps here.
      - When libosinfo is on the hypervisor (Debian/Ubuntu C(osinfo-db), C(python3-gi),
        C(gir1.2-libosinfo-1.0); the kvm_host role installs them with
        C(kvm_host_install_libosinfo)) an id is looked up there, as virt-install does - virtio
        support of disks and NICs, virtio-rng, the guest agent channel, q35, the minimum memory
        (a warning below it), the installer's kernel-url-argument (see O(install.location)) and
        the id written into the domain's libosinfo metadata.
      - Otherwise, and for ids the installed osinfo-db does not know yet (V(debian12) in
        osinfo-db 2022), the families decide by prefix - V(linux) - virtio disks and NICs,
        virtio-rng, guest agent channel, q35. V(windows) - SATA disks, e1000e NIC, localtime
        clock, Hyper-V enlightenments (with KVM), q35. V(generic) - SATA disks, e1000 NIC, pc.
        BSDs get virtio disks and NICs. RV(os_info) says which source decided.
      - libosinfo is read only when the module creates a guest or starts its installer; a
        re-run against an existing guest (or a removal) does not load its database.
      - The defaults apply to new domains, and to disks and NICs listed without O(disks[].bus) or O(networks[].model).
      - A new guest gets the devices virt-install 4.1 gives it - machine q35 (x86, when the OS
        supports it and no disk uses the IDE bus), suspend-to-RAM/disk off, the QEMU guest
        agent channel and virtio-rng (from /dev/urandom) when the OS has the drivers,
        C(discard=unmap) on sparse images, a USB tablet with graphics. Not copied - 14 spare
        PCIe root ports (libvirt adds the ones the devices need) and Hyper-V enlightenments
        under TCG (QEMU without KVM has none).
      - An existing domain keeps the devices it was defined with - the module compares only
        what the options ask for, so a guest defined with older defaults (machine pc, no
        agent channel) stays unchanged on a re-run.
    type: str
    default: generic
  disks:
    description:
      - The domain's disks and CD-ROMs (C(--disk)), in order. Given, the list is the complete
        set of disks in the definition (images of disks dropped from it are kept). Unset leaves
        the disks of an existing domain alone.
    type: list
    elements: dict
    suboptions:
      path:
        description: Absolute path of the image file (or ISO for a CD-ROM).
        type: str
      pool:
        description: Storage pool holding O(disks[].volume) (instead of O(disks[].path)).
        type: str
      volume:
        description: Volume name in O(disks[].pool); created when missing.
        type: str
      size:
        description:
          - Size in GiB like virt-install (may be fractional), used when the image is created.
          - A size larger than an existing image is reported as a warning and in RV(disks); images are never resized.
        type: float
      format:
        description:
          - Image format; V(raw) for new images (as in the guide).
          - The format of an existing image is never read from its header (a guest writes its disk's
            bytes; a forged qcow2 header with a backing file would make QEMU read any host file). It
            comes from what kvmops recorded in the domain's metadata when it made or first used the
            image (a different O(disks[].format) is then refused), else from this option, else from
            the existing definition, else V(raw). An image whose header claims qcow2, with neither a
            record nor this option, is refused; set V(qcow2) or V(raw) yourself.
        type: str
        choices: [raw, qcow2]
      sparse:
        description: Create a sparse image (no allocation). V(false) preallocates.
        type: bool
        default: true
      backing_store:
        description: Base image of a qcow2 copy-on-write clone (created at once whatever its size; the base is never written).
        type: str
      backing_format:
        description:
          - The format of the base image (O(disks[].backing_store) or O(disks[].base_image)); unset, V(qcow2).
          - The module never takes a base image's format from its header (a downloaded or local image is
            untrusted bytes). The header is read only to refuse a base that disagrees with this format,
            and a qcow2 base with a backing file or an external data file of its own (QEMU would read
            that host file through every guest made from it); flatten such an image with
            C(qemu-img convert -O qcow2) first.
        type: str
        choices: [qcow2, raw]
      bus:
        description: Disk bus; the default comes from O(os_variant).
        type: str
        choices: [virtio, sata, scsi, ide, usb]
      cache:
        description: Cache mode of the disk.
        type: str
        choices: [default, none, writethrough, writeback, directsync, unsafe]
      device:
        description: V(disk) or V(cdrom).
        type: str
        choices: [disk, cdrom]
        default: disk
      readonly:
        description: Attach read-only (always true for a CD-ROM).
        type: bool
      base_image:
        description:
          - Make this disk a qcow2 copy-on-write clone of a base (cloud) image fetched from a URL,
            instead of naming O(disks[].backing_store) yourself. The clone is created at
            O(disks[].path) with O(disks[].size) GiB (at least the base's size; grown, never
            shrunk), and only when it does not exist yet.
          - The base is downloaded once per host into O(disks[].base_image.cache_dir) (to a
            temporary file, verified, then renamed into place and made read-only) and shared
            by every clone; it is never written to and never replaced. A new image version
            needs a new checksum, which makes a new cache entry.
          - Check mode downloads nothing.
        type: dict
        suboptions:
          url:
            description: http(s)/ftp/file URL (or absolute path on the hypervisor) of the image.
            type: str
            required: true
          checksum:
            description:
              - V(ALGORITHM:DIGEST) or V(ALGORITHM:URL) of a checksum file such as SHA256SUMS or
                SHA512SUMS (the format of M(ansible.builtin.get_url)); algorithms V(sha256), V(sha512).
              - A wrong checksum fails the task and caches nothing.
            type: str
            required: true
          cache_dir:
            description: The base-image cache, beside the install-media cache.
            type: path
            default: /var/lib/libvirt/boot/kvmops-base
          validate_certs:
            description: Verify the server's TLS certificate.
            type: bool
            default: true
          timeout:
            description: Seconds to wait for the server on each request.
            type: int
            default: 30
  networks:
    description:
      - Network interfaces (C(--network)), in order. Unset creates one NIC on libvirt's
        V(default) network for a new domain and leaves an existing domain's NICs alone.
      - Without O(networks[].mac) the MAC libvirt generated is kept forever.
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
        description: macvtap mode for O(networks[].direct).
        type: str
        choices: [bridge, vepa, private, passthrough]
      model:
        description: NIC model such as V(virtio) or V(e1000e); the default comes from O(os_variant).
        type: str
      mac:
        description: Fixed MAC address.
        type: str
  graphics:
    description:
      - Graphical console (C(--graphics)). Unset gives a new domain VNC with libvirt's defaults
        and leaves an existing domain's graphics alone.
    type: dict
    suboptions:
      type:
        description: V(none) (serial console only, like C(--graphics none)), V(vnc) or V(spice).
        type: str
        choices: [none, vnc, spice]
        default: vnc
      listen:
        description:
          - Listen address. Unset leaves it to qemu.conf (vnc_listen, 127.0.0.1 by default).
            Listening on a public address without TLS is insecure; prefer an SSH tunnel.
        type: str
      port:
        description: Fixed port (5900-65535), or V(-1) for autoport (the default for new domains).
        type: int
      password:
        description:
          - Console password, written into the XML (never on a command line, never returned).
          - VNC authentication uses at most 8 bytes; longer VNC passwords fail before anything
            changes (libvirt 8.x and later refuse them), and the module warns when a
            password-protected VNC console listens on a non-loopback address.
        type: str
      keymap:
        description: Keymap such as V(en-us) or V(de).
        type: str
      allow_insecure:
        description:
          - Allow a console on a non-loopback O(graphics.listen) without what a public console
            needs - VNC - TLS really on (C(vnc_tls), usable certificates QEMU can read) with client
            certificate verification (C(vnc_tls_x509_verify)); SPICE - TLS (C(spice_tls), usable
            certificates) and a password. Without it such a listen fails before anything changes
            (the same rule as M(kvmops.hypervisor.vnc_listen) for the host setting and per-guest
            listens).
        type: bool
        default: false
  serial:
    description:
      - V(pty) (default for new domains) or an absolute path of a log file that receives the
        guest's serial console (written by virtlogd, truncated when the guest starts).
      - virtlogd runs as root, so the log must be in C(/var/log/libvirt/qemu/), under
        C(/var/lib/libvirt/images/) or in the directory of one of the guest's disk images, and
        must not be a symlink; other paths are refused.
      - O(state=absent) with O(remove_storage) removes the log files kvmops named for the guest
        (and virtlogd's rotated copies).
    type: str
  remove_storage:
    description:
      - With O(state=absent), also delete the disk images and volumes kvmops created for this guest
        (recorded in the domain's metadata when it made them), those named in O(disks), its
        serial log files and its UEFI NVRAM.
      - Never CD-ROMs, read-only or V(<shareable/>) disks, nor disks kvmops did not create (a
        domain defined by virsh, an image brought along, a guest defined by an older release);
        those are kept with a warning; name them in O(disks) to remove them.
      - V(false) keeps the NVRAM too.
    type: bool
    default: false
  update:
    description:
      - V(true) redefines the persistent definition of an existing domain that differs from the
        options; a running domain then reports RV(restart_required).
      - V(false) only reports the differences (as a warning and in RV(differences)).
    type: bool
    default: true
  restart:
    description:
      - Apply an updated definition to a running domain right away by a clean shutdown (bounded by O(shutdown_timeout)) and a start.
      - This also applies a definition that an earlier run (or C(virsh define)) changed while the guest ran, as long as the running guest still
        differs from it in memory, vCPUs or CPU model (libvirt's live and persistent definitions) - set it in a later run, or in a handler
        notified by a task that reported RV(restart_required).
      - V(false) never restarts; a running guest whose definition waits for a restart is reported on every run (RV(restart_required) and a warning)
        until it has restarted.
    type: bool
    default: false
  shutdown_timeout:
    description: Seconds to wait for a clean ACPI shutdown before failing (the guest is never powered off by force).
    type: int
    default: 120
  install:
    description:
      - How the guest's operating system gets onto its disks, like virt-install's C(--location),
        C(--cdrom), C(--import) and C(--pxe). Give exactly one of O(install.location),
        O(install.cdrom), O(install.import) or O(install.pxe).
      - For O(install.location), O(install.cdrom) and O(install.pxe) the domain's persistent
        definition is the FINAL one (it boots from its disk). When this module creates the
        domain it marks the install as pending in the domain's metadata; with O(state=running)
        it starts the domain once from a transient install configuration (the installer's
        kernel and initrd booted directly, the CD-ROM first, or the network first) with
        C(on_reboot=destroy), so the installer's reboot ends the install phase.
      - With O(wait) the module waits for that end, then starts the final
        configuration, so the next task finds the installed guest running. A later run finds
        the install completed in the metadata and never installs again; a run after an
        install that nobody waited for starts the final configuration.
      - O(state=present) and O(state=stopped) define the domain and leave the install pending
        until a run with O(state=running).
      - An existing domain that this module did not create (no install record) is never
        installed over; the module warns instead.
    type: dict
    suboptions:
      location:
        description:
          - An install tree (C(--location)) - an http, https or ftp URL, a directory on the
            hypervisor, or an ISO image on the hypervisor that holds one.
          - Layouts found - RHEL, CentOS, Fedora, Rocky and Alma (C(.treeinfo), C(images/pxeboot/vmlinuz)
            and C(initrd.img)), Debian and Ubuntu netboot (give C(.../dists/<suite>/main/installer-<arch>/);
            one level up or down works too), openSUSE/SLES (C(boot/<arch>/loader/linux) and C(initrd)), and installer
            DVDs (C(isolinux/), C(install.amd/), C(casper/)).
          - The kernel and initrd are copied into O(install.cache_dir) under a directory keyed
            by the location and the architecture, checked against their size and SHA-256
            (and the checksums of C(.treeinfo) when it has them), written to a temporary file
            and renamed into place. A later run uses the cache without any network traffic.
          - An ISO needs xorriso, bsdtar or isoinfo on the hypervisor; it is also attached as a
            CD-ROM while the installer runs (like virt-install).
          - Like virt-install, the installer is told where its tree is (libosinfo's
            kernel-url-argument) - for an http(s)/ftp location the module appends
            V(inst.repo=<location>) for RHEL, CentOS and Fedora 7 and later, V(method=<location>)
            for older ones, V(install=<location>) for openSUSE/SLES, and nothing for Debian and
            Ubuntu (their netboot initrd asks for a mirror), unless O(install.extra_args)
            already names a source (C(inst.repo=), C(repo=), C(method=), C(inst.stage2=),
            C(install=)). Which one is decided by the tree's C(.treeinfo) (family and version),
            else O(os_variant), else the layout found; RV(install) returns it as
            C(source_argument) and C(source_argument_decided_by).
          - An ISO needs nothing more (the installer looks at its CD-ROM). A directory on the
            hypervisor cannot be reached from inside the guest - a RHEL or SUSE tree there
            gets a warning, serve it over HTTP or name a reachable source in
            O(install.extra_args).
        type: str
      cdrom:
        description:
          - An installer ISO on the hypervisor (C(--cdrom)), attached as a CD-ROM and booted
            first during the install phase only. The final definition does not contain it,
            so the guest never boots the installer again. If a multi-stage installer needs the
            medium after its first reboot, also list the ISO in O(disks) with
            O(disks[].device=cdrom) (the final definition boots from the disk first).
        type: path
      import:
        description:
          - Boot an existing disk image (C(--import)) - the first entry of O(disks) must exist.
            There is no install phase.
        type: bool
      pxe:
        description: Boot from the network first during the install phase (C(--pxe)); the domain needs a NIC.
        type: bool
      extra_args:
        description:
          - Kernel arguments for the installer (C(--extra-args)), only with O(install.location),
            e.g. V(console=tty0 console=ttyS0,115200) to follow the installer on the serial
            console, or V(inst.ks=http://server/ks.cfg).
          - The LAST C(console=) becomes /dev/console, where the installer writes. With VNC or
            spice graphics and a serial console last the VNC screen stops at the last boot
            message; the module warns then (put V(console=tty0) last, or use
            O(graphics.type=none) and C(virsh console)).
        type: str
      kickstart:
        description:
          - A kickstart, preseed or AutoYaST file on the hypervisor, injected at the root of a copy of the
            installer's initrd (C(--initrd-inject)), only with O(install.location).
          - Unless O(install.extra_args) already names one, the installer is pointed at it with
            C(inst.ks=file:/<name>) (RHEL family), C(preseed/file=/<name>) (Debian/Ubuntu; a file named
            C(preseed.cfg) is read by itself) or C(autoyast=file:///<name>) (openSUSE).
          - Its content is never logged or returned; the injected copy is mode 0600 and is
            removed once the install phase has ended.
        type: path
      cache_dir:
        description: Where fetched kernels and initrds are kept (QEMU must be able to read them).
        type: path
        default: /var/lib/libvirt/boot/kvmops
      validate_certs:
        description: Verify TLS certificates of an https O(install.location).
        type: bool
        default: true
      timeout:
        description: Network timeout in seconds for each request to O(install.location).
        type: int
        default: 30
  wait:
    description:
      - With O(install), how long to wait for the install phase to end (C(--wait)) - a number
        of seconds, or a number with a unit V(30s), V(90m), V(1h), V(1d). A bare number counts
        SECONDS (virt-install's C(--wait) counts minutes - its C(--wait 60) is V(60m) here).
        V(0) returns once the installer has started, V(-1) waits without limit.
      - Once the installer has ended (its reboot stops the domain - C(on_reboot=destroy) during
        the install phase) the module starts the final configuration, so a Windows Setup or
        anaconda that reboots goes on booting from the disk within the same task.
      - Without O(wait) (or with V(0)) the task returns while the installer runs; after its
        first reboot the guest stays shut off until the next run with O(state=running), which
        starts the final configuration.
      - When the time runs out, RV(install_phase) is V(timed_out) (with a warning, not a
        failure); a later run finishes the job.
    type: raw
    default: 0
  clone_from:
    description:
      - Make this guest, when it does not exist yet, as a clone of another guest on the same
        hypervisor - a shut-off guest or a template (O(template)). The clone gets a new name,
        a new UUID and new MAC addresses (libvirt makes them) and its own copy of every
        writable disk, named after the source's image with the source's name replaced by the
        clone's (or the clone's name in front), in the same directory or pool.
      - CD-ROMs, read-only and shareable disks are shared with the source, not copied. A UEFI
        guest's NVRAM file is copied (the clone's own C(<name>_VARS.fd) beside it). TPM state
        is never copied - the clone gets a new one at its first start.
      - The format of each source disk comes from its definition (C(<driver type>)), never from
        the image's header; raw and qcow2 disks of type file or volume can be cloned.
      - O(memory), O(vcpus), O(networks), O(graphics), O(serial), O(kernel), O(initrd) and
        O(cmdline) override the source's. A source that logs its serial console to a file
        needs O(serial) (the clone's own log). Cannot go with O(disks) or O(install).
      - O(cloud_init) gives the clone its own NoCloud seed, built exactly as for a new
        cloud-image guest (O(cloud_init.seed_dir)/NAME/cidata.iso, a read-only virtio disk);
        it replaces the source's kvmops seed device (a read-only C(cidata.iso)), which the
        clone never shares. Its instance-id (default C(iid-NAME)) must differ from the one the
        source's seed gives, else cloud-init ignores the clone's seed (a warning; refused with
        O(clone_from.seal)). O(state=absent) with O(remove_storage) removes the clone's seed
        (its clone record names it), never the source's. Without O(cloud_init) the clone gets
        a copy of the source's kvmops seed in its own seed directory (the same bytes and
        instance-id, so cloud-init runs nothing again; removing the source later does not take
        the clone's seed away); a seed kvmops did not write stays shared.
      - Host port forwards are one guest's, like a MAC - the clone does not take the source's
        (a warning names them); give it O(port_forwards) of its own.
      - Once the guest exists, O(clone_from) is not looked at again - the clone is a normal
        guest and the options apply to it as to any other (drift, O(update)).
      - Check mode copies and defines nothing.
    type: dict
    suboptions:
      name:
        description: The source guest or template (shut off).
        type: str
        required: true
      mode:
        description:
          - V(full) copies every disk - C(cp --reflink=auto --sparse=always) (a reflink where the
            file system can, sparse otherwise) for a file, libvirt's volume clone for a pool
            volume.
          - V(linked) makes a qcow2 overlay whose backing file is the source's image - fast and
            small; the source must be a template (O(template)), and a template cannot be
            removed while linked clones use it.
        type: str
        choices: [full, linked]
        default: full
      seal:
        description:
          - V(true) makes the clone unique inside as well, at its first boot, through
            cloud-init in the image (nothing is needed on the hypervisor; the image is not
            opened on the host). The clone's seed carries a new instance-id, so cloud-init
            runs as on a new instance - its instance state is new
            (C(/var/lib/cloud/instances/<iid>)) and its SSH module deletes and makes new SSH
            host keys (the seal sets C(ssh_deletekeys) to true). Added to the user-data as
            C(bootcmd) entries run once per instance (C(cloud-init-per instance)) - a new
            C(/etc/machine-id) (removed, then C(systemd-machine-id-setup), which in a KVM/QEMU
            guest takes the clone's UUID; a regular C(/var/lib/dbus/machine-id) becomes a link to
            it) and no C(/etc/udev/rules.d/70-persistent-net.rules).
          - The machine-id changes during the first boot - that boot's PID 1 and journal keep
            the template's id (its journal is filed under it) until the clone reboots.
          - Needs cloud-init in the image. An image without cloud-init (or with it disabled)
            is NOT sealed and nothing on the host can tell - a source without a kvmops seed
            gives a warning. Not covered (other virt-sysprep operations) - log files and the
            journal, shell history, DHCP leases, C(/var/lib/systemd/random-seed), user
            accounts and their SSH keys, C(HWADDR=) in ifcfg files, cloud-init's per-once
            semaphores (C(/var/lib/cloud/sem)).
          - Without O(cloud_init) a minimal seed is made (hostname = the clone's name). User
            data given as a script or multi-part, or setting C(ssh_deletekeys) to false, is refused.
          - A Windows source (its libosinfo id) is refused - run sysprep C(/generalize) inside
            the guest before making it a template.
          - Only when the clone is made; keep it in later runs of the same task (it is part of
            the seed's user-data).
        type: bool
        default: false
  template:
    description:
      - V(true) marks the guest as a template (in the kvmops metadata of its definition) -
        the collection never starts it (O(state=running) fails), its writable disk images
        become read-only (mode 0444; their modes are kept in the mark), and it can be
        removed only when no linked clone uses it. Needs O(state=stopped) or O(state=present);
        a running guest is shut down first (O(state=stopped)).
      - V(false) makes a template a normal guest again (images back to their modes), refused
        while linked clones use it. Unset leaves the mark as it is.
    type: bool
  cloud_init:
    description:
      - Give the guest a cloud-init NoCloud seed (user-data, meta-data, network-config) built on
        the hypervisor with xorriso (volume label C(cidata)) and attached as a read-only virtio
        disk (the last disk; not a CD-ROM - cloud kernels such as Debian's have no SATA driver,
        so a seed on a SATA CD-ROM is never seen).
      - The seed lives in O(cloud_init.seed_dir)/NAME/ for the guest's whole life (so the guest
        can restart; O(state=absent) with O(remove_storage) removes it), mode 0640 for root and
        QEMU's group.
      - Every run renders the seed and compares it byte for byte with the one on disk. A
        difference is reported in RV(differences) (V(cloud_init.user-data) ...) and the seed
        is rebuilt. cloud-init reads a seed again only when it carries a new instance-id; with
        the same O(cloud_init.instance_id) a running (or rebooted) guest ignores the change.
        Change O(cloud_init.instance_id) to have the next boot run cloud-init as on a new
        instance (users, keys, hostname, new SSH host keys).
      - Check mode builds no seed.
    type: dict
    suboptions:
      user_data:
        description:
          - cloud-config as a dictionary, or text (C(#cloud-config) YAML, a C(#!) script, or MIME
            multi-part). Text must be valid YAML when it is cloud-config.
          - A password in clear text in it (V(password), V(users[].plain_text_passwd), ...) gives a
            warning; use O(cloud_init.password) instead.
          - It is C(no_log) because it may hold passwords, tokens and keys; the module masks it in
            its results, diffs and logs. Ansible masks every string of a C(no_log) option wherever
            it appears in the output, so the short values of a dictionary (a user name, V(default))
            are masked elsewhere too; give it as one C(#cloud-config) text to mask only that.
        type: raw
      meta_data:
        description:
          - Extra meta-data keys; V(instance-id) and V(local-hostname) come from O(cloud_init.instance_id) and O(cloud_init.hostname).
          - Not C(no_log) (names, no secrets); put secrets in O(cloud_init.user_data).
        type: dict
      network_config:
        description:
          - Network configuration version 1 or 2 (dictionary or YAML text). Unset, cloud-init runs DHCP on the first NIC.
          - Not C(no_log) (addresses and names, no secrets); put secrets in O(cloud_init.user_data).
        type: raw
      ssh_authorized_keys:
        description: Public keys for the image's default user (added to the cloud-config V(ssh_authorized_keys)).
        type: list
        elements: str
      password:
        description:
          - Password of the image's default user. Hashed on the hypervisor with SHA-512 crypt
            (Python's crypt, else C(openssl passwd -6) over stdin); only the hash is written,
            and a re-run keeps the hash while the password matches.
        type: str
      password_hash:
        description: An already hashed password (C($6$...)) instead of O(cloud_init.password).
        type: str
      hostname:
        description: Host name (meta-data V(local-hostname)); defaults to O(name).
        type: str
      instance_id:
        description: cloud-init's instance-id; default V(iid-NAME). Change it to re-run cloud-init on the next boot.
        type: str
      seed_dir:
        description: Directory holding each guest's seed (one sub-directory per guest).
        type: path
        default: /var/lib/libvirt/boot/kvmops-seeds
  guest_agent:
    description:
      - Add the virtio-serial channel C(org.qemu.guest_agent.0) for qemu-guest-agent (address
        discovery with V(agent), C(virsh qemu-agent-command)). Default V(true) with
        O(cloud_init), else unmanaged. Added to an existing domain's definition when missing
        (RV(restart_required) while it runs); never removed.
    type: bool
  port_forwards:
    description:
      - Add a user-mode NIC with the passt backend (libvirt 9.0+, package passt) that forwards
        these host ports to the guest - reach a guest's SSH on 127.0.0.1 without a bridge or
        routing. Compared and updated on an existing domain.
    type: list
    elements: dict
    suboptions:
      host_port:
        description: Port on the hypervisor.
        type: int
        required: true
      guest_port:
        description: Port in the guest.
        type: int
        required: true
      address:
        description: Host address to listen on.
        type: str
        default: 127.0.0.1
      proto:
        description: Protocol.
        type: str
        choices: [tcp, udp]
        default: tcp
  port_forward_backend:
    description:
      - How O(port_forwards) are made. V(passt) - a libvirt C(<interface type='user'>) with the
        passt backend and C(<portForward>) (libvirt 9.0+ built with passt; RHEL 9, Fedora,
        Ubuntu 24.04). V(qemu) - QEMU's own user-mode network (slirp) with C(hostfwd) rules,
        added as C(<qemu:commandline>) arguments (libvirt then marks the domain
        C(custom-argv) tainted); for hosts such as Debian 12, whose libvirt is built with
        passt disabled, and whose QEMU has slirp.
    type: str
    choices: [passt, qemu]
    default: passt
  wait_for:
    description:
      - After the run, wait until the running guest has an IP address (V(ip)) or until its SSH
        server answers with its banner (V(ssh)), at most O(wait_timeout) seconds; then
        RV(interfaces), RV(ansible_host) and RV(ansible_port) say how to reach it.
      - Addresses come from O(address_sources), none of which sends anything to the guest.
        The SSH wait connects to O(ssh_host)/O(ssh_port), else to a O(port_forwards) entry for
        guest port 22, else to the guest's address on port 22, and only reads the banner.
    type: str
    choices: [none, ip, ssh]
    default: none
  wait_timeout:
    description: Seconds O(wait_for) may take before the task fails (emulated guests need minutes).
    type: int
    default: 300
  address_sources:
    description:
      - Where addresses come from, in this order - V(lease) (the libvirt network's DHCP leases),
        V(agent) (qemu-guest-agent), V(arp) (the host's ARP table). A source that fails is
        skipped and named in RV(address_errors).
    type: list
    elements: str
    choices: [agent, arp, lease]
    default: [lease, agent, arp]
  ssh_host:
    description: Where O(wait_for=ssh) connects (e.g. the hypervisor's address of a forwarded port) instead of the discovered address.
    type: str
  ssh_port:
    description: Port for O(wait_for=ssh) with O(ssh_host) or the discovered address.
    type: int
'''


# Set after the class: ansible-test's yamllint reads the class body's string literals only.
ModuleDocFragment.BATCH = _batch(ModuleDocFragment.DOCUMENTATION)
