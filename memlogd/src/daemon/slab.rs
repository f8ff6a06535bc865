//! A slab of entries addressed by (index, generation) keys, so a key taken
//! before an entry was removed never reaches the entry that reused its slot.

/// Key of a slab entry; packs into the 62 low bits of an epoll token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    idx: u32,
    gen: u32,
}

impl Key {
    /// Packs into 62 bits (30 bits of generation).
    pub fn to_u64(self) -> u64 {
        (u64::from(self.gen & 0x3fff_ffff) << 32) | u64::from(self.idx)
    }
    pub fn from_u64(v: u64) -> Key {
        Key {
            idx: v as u32,
            gen: ((v >> 32) & 0x3fff_ffff) as u32,
        }
    }
}

#[derive(Debug)]
struct Slot<T> {
    gen: u32,
    val: Option<T>,
}

/// Entries with stable keys; freed slots are reused with a new generation.
#[derive(Debug)]
pub struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn insert(&mut self, v: T) -> Key {
        self.len += 1;
        if let Some(idx) = self.free.pop() {
            let s = &mut self.slots[idx as usize];
            s.val = Some(v);
            return Key { idx, gen: s.gen };
        }
        self.slots.push(Slot {
            gen: 0,
            val: Some(v),
        });
        Key {
            idx: (self.slots.len() - 1) as u32,
            gen: 0,
        }
    }
    pub fn get_mut(&mut self, k: Key) -> Option<&mut T> {
        let s = self.slots.get_mut(k.idx as usize)?;
        if (s.gen & 0x3fff_ffff) == k.gen {
            s.val.as_mut()
        } else {
            None
        }
    }
    pub fn remove(&mut self, k: Key) -> Option<T> {
        let s = self.slots.get_mut(k.idx as usize)?;
        if (s.gen & 0x3fff_ffff) != k.gen {
            return None;
        }
        let v = s.val.take()?;
        s.gen = s.gen.wrapping_add(1) & 0x3fff_ffff;
        self.free.push(k.idx);
        self.len -= 1;
        Some(v)
    }
    /// Takes an entry out while keeping its slot and key reserved; give it
    /// back with [`Slab::restore`] (lets the owner mutate it and the rest of
    /// the daemon at once).
    pub fn take(&mut self, k: Key) -> Option<T> {
        let s = self.slots.get_mut(k.idx as usize)?;
        if s.gen != k.gen {
            return None;
        }
        s.val.take()
    }
    /// Puts back an entry taken with [`Slab::take`].
    pub fn restore(&mut self, k: Key, v: T) {
        if let Some(s) = self.slots.get_mut(k.idx as usize) {
            if s.gen == k.gen && s.val.is_none() {
                s.val = Some(v);
            }
        }
    }
    /// Keys of all live entries.
    pub fn keys(&self) -> Vec<Key> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.val.is_some())
            .map(|(i, s)| Key {
                idx: i as u32,
                gen: s.gen,
            })
            .collect()
    }
    /// Keys of live entries, into a reused vector.
    pub fn keys_into(&self, out: &mut Vec<Key>) {
        out.clear();
        out.extend(
            self.slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.val.is_some())
                .map(|(i, s)| Key {
                    idx: i as u32,
                    gen: s.gen,
                }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keys_miss_reused_slots() {
        let mut s = Slab::default();
        let a = s.insert("a");
        assert_eq!(s.remove(a), Some("a"));
        let b = s.insert("b");
        assert_eq!(s.get_mut(a), None);
        assert_eq!(s.remove(a), None);
        assert_eq!(s.get_mut(b).copied(), Some("b"));
        assert_eq!(Key::from_u64(b.to_u64()), b);
        assert_eq!(s.len(), 1);
        assert_eq!(s.keys(), vec![b]);
    }
}
