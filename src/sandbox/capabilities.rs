//! Dropping every capability: the bounding set (so no exec can regain one), the ambient set,
//! the effective/permitted/inheritable sets, and the securebits that would otherwise give uid 0
//! capabilities again at exec. After this the process is, inside its user namespace, an
//! ordinary user even if its uid is 0.

use rustix::thread::{
    CapabilitiesSecureBits, CapabilitySet, CapabilitySets, clear_ambient_capability_set,
    remove_capability_from_bounding_set, set_capabilities, set_capabilities_secure_bits,
};

/// Drops all capabilities of the calling thread for good.
pub fn drop_all() -> Result<(), rustix::io::Errno> {
    // Capabilities are numbered 0..=CAP_LAST_CAP (40 on current kernels); asking to drop one the
    // kernel does not know returns EINVAL, which ends the walk.
    for capability in 0..64 {
        match remove_capability_from_bounding_set(CapabilitySet::from_bits_retain(1 << capability))
        {
            Ok(()) => {}
            Err(rustix::io::Errno::INVAL) => break,
            Err(error) => return Err(error),
        }
    }
    // Lock uid 0 out of the capability rules: no caps at exec for root, no fixups on setuid.
    set_capabilities_secure_bits(
        CapabilitiesSecureBits::NO_ROOT
            | CapabilitiesSecureBits::NO_ROOT_LOCKED
            | CapabilitiesSecureBits::NO_SETUID_FIXUP
            | CapabilitiesSecureBits::NO_SETUID_FIXUP_LOCKED
            | CapabilitiesSecureBits::KEEP_CAPS_LOCKED
            | CapabilitiesSecureBits::NO_CAP_AMBIENT_RAISE
            | CapabilitiesSecureBits::NO_CAP_AMBIENT_RAISE_LOCKED,
    )?;
    clear_ambient_capability_set()?;
    set_capabilities(
        None,
        CapabilitySets {
            effective: CapabilitySet::empty(),
            permitted: CapabilitySet::empty(),
            inheritable: CapabilitySet::empty(),
        },
    )
}
