//! System call tables without pointers.
//!
//! A table of `(&str, u32)` holds a pointer per name, and in a static-pie
//! every pointer in a static is a relocation that each rrun process writes
//! at start: the two seccomp tables were 19 KiB of the 87 KiB of
//! relocated data, five pages copied on write in every process, whether
//! or not it compiles a profile. Packed at compile time into fixed-width
//! names they are read-only data, shared and never written.

/// The longest system call name either table holds
/// (`set_mempolicy_home_node` and the like fit, with room).
const NAME_MAX: usize = 24;

/// One system call: its name and number.
#[derive(Clone, Copy)]
pub struct Call {
    name: [u8; NAME_MAX],
    len: u8,
    nr: u16,
}

impl Call {
    /// The name's bytes (ASCII, checked when the table is packed).
    pub fn name_bytes(&self) -> &[u8] {
        &self.name[..usize::from(self.len)]
    }

    /// The name (tests compare and print names; rrun compares bytes).
    #[cfg(test)]
    pub fn name(&self) -> &str {
        std::str::from_utf8(self.name_bytes()).unwrap_or_default()
    }

    pub fn nr(&self) -> u32 {
        u32::from(self.nr)
    }
}

/// Packs `(name, number)` pairs; evaluated at compile time (a name too
/// long, not ASCII, or a number above `u16::MAX` fails the build).
pub const fn pack<const N: usize>(list: &[(&str, u32)]) -> [Call; N] {
    assert!(list.len() == N);
    let mut out = [Call {
        name: [0; NAME_MAX],
        len: 0,
        nr: 0,
    }; N];
    let mut i = 0;
    while i < N {
        let (name, nr) = list[i];
        let b = name.as_bytes();
        assert!(b.len() <= NAME_MAX, "system call name too long");
        assert!(nr <= u16::MAX as u32, "system call number too large");
        let mut j = 0;
        while j < b.len() {
            assert!(b[j].is_ascii(), "system call name not ASCII");
            out[i].name[j] = b[j];
            j += 1;
        }
        out[i].len = b.len() as u8;
        out[i].nr = nr as u16;
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_calls_read_back_as_given() {
        const LIST: &[(&str, u32)] = &[("a", 0), ("set_mempolicy_home_node", 450)];
        static T: [Call; LIST.len()] = pack(LIST);
        assert_eq!((T[0].name(), T[0].nr()), ("a", 0));
        assert_eq!((T[1].name(), T[1].nr()), ("set_mempolicy_home_node", 450));
        assert_eq!(T[1].name_bytes(), b"set_mempolicy_home_node");
    }
}
