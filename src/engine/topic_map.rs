//! `TopicMap`: a persistent (copy-on-write) hash array mapped trie from topic name to
//! topic entry.
//!
//! Source: Phil Bagwell, "Ideal Hash Trees" (2001) — the HAMT. Each level consumes five
//! bits of the topic's 64-bit hash and has 32 child slots, so a map of `n` topics is
//! about `log32(n)` levels deep: 2 at 1,000 topics, 4 at 100,000 and 1,000,000. Two
//! different names with the same 64-bit hash share a collision list.
//!
//! Why a trie and not a `HashMap`: the snapshot readers see is immutable, so every change
//! is made on a copy. Copying a whole `HashMap` per mutation costs O(topics); here a
//! change copies only the path from the root to its topic (at most `depth` nodes of at
//! most 32 children) plus the topic's own entry. A node is copied only while a published
//! snapshot may still reach it, so the second and later changes to the same path within
//! one writer batch mutate in place.
//!
//! # Two ways to share
//!
//! - [`Owning`] (the snapshot's topics): every node and entry has one owner, the
//!   writer's working map; a published snapshot is a view that owns nothing. A node is
//!   copied bitwise (no child is touched) and the original freed, without its children,
//!   once no view reaches it; see [`garbage`](super::garbage). Measured with callgrind
//!   (`benches/floor_callgrind.rs`, subscribe–unsubscribe round trips on 1,000 topics,
//!   one call each): see the numbers in `garbage.rs`.
//! - [`Counted`] (the pattern index's literal children, whose maps are cloned as values
//!   inside its `Arc`-shared nodes): nodes are [`WriterRc`]s, counted by the writer alone
//!   (not atomically: see its docs); copying a node takes a reference to each child.
//!
//! # Node shapes: one dependent load per level
//!
//! A broadcast to a topic nobody touched lately pays a cache miss for every pointer it
//! follows, so each node is one allocation holding its children themselves, in one of
//! two shapes chosen by how many it has:
//!
//! - [`Dense`]: all 32 slots, empty ones [`Child::Empty`]. The slot is found by indexing
//!   with the hash's five bits: the lookup reads one cache line of the node, the one with
//!   that child. Upper levels of a big map are full (at 100,000 topics, the first three),
//!   and so is the root, always.
//! - [`Sparse`]: up to [`SPARSE_MAX`] children packed in order of arrival. Their slot
//!   numbers live in the parent's slot, beside the pointer ([`Frags`]), and are searched
//!   as one 64-bit word in a few instructions (no loop, no `popcnt`): the lookup reads
//!   one line of the node, the one with the child it wants. The bottom level of a big
//!   map (about three topics per node at 100,000) is sparse.
//!
//! The trie this replaces kept a bitmap, a slot table and a `SmallVec` of four children:
//! a node of more than four kept its children in a second allocation, so a lookup at
//! 100,000 topics followed seven pointers to reach an entry, not four. Measured with
//! callgrind's cache simulation over 4,096 cold topics among 100,000
//! (`benches/one_subscriber.rs`, `--ir fanout_topic spread`): 11.8 L1 data misses per
//! whole broadcast before, 6.7 now, against 4.3 for a naive `RwLock<HashMap>` (whose
//! callbacks need no sink of their own); 711 instructions per broadcast to a hot topic
//! before, 671 now.
//!
//! Lookups take `&self` and never allocate: the broadcast hot path.

// The crate denies `unsafe`; this file is a measured exception: the bitwise node copies
// of [`Owning`] (see `garbage.rs`).
#![allow(unsafe_code)]

use std::mem::ManuallyDrop;
use std::ops::Deref;

use super::garbage::{Garbage, Husk, Owned};
use super::writer_rc::WriterRc;

/// What the map stores: anything with a name and that name's hash.
pub(crate) trait Keyed: Clone {
    fn key(&self) -> &str;
    fn key_hash(&self) -> u64;
}

/// How a map's nodes and entries are shared between the writer's working copy and the
/// copies it published: [`Counted`] or [`Owning`].
pub(crate) trait Sharing: Sized {
    /// The pointer to a node, list or entry.
    type Ptr<T>: Deref<Target = T>;
    /// What the working map keeps besides its tree (nothing, or the epoch and garbage).
    type Gc<V>: Default;
    fn new<T, V>(value: T, gc: &Self::Gc<V>) -> Self::Ptr<T>;

    /// Another pointer to the same allocation: a counted reference, or an alias that
    /// owns nothing.
    ///
    /// # Safety
    ///
    /// Under [`Owning`], the alias must not be dropped, or the original must become a
    /// husk ([`Husk`]) that is never dropped whole.
    unsafe fn alias<T>(p: &Self::Ptr<T>) -> Self::Ptr<T>;

    /// Mutable access to a node or collision list, copying it first if a published copy
    /// of the map may reach it.
    fn make_mut<'a, T: Part<Self>, V>(p: &'a mut Self::Ptr<T>, gc: &mut Self::Gc<V>) -> &'a mut T;

    /// Mutable access to an entry, copying it with `copy` first if a published copy of
    /// the map may reach it.
    fn make_mut_entry<'a, V>(
        p: &'a mut Self::Ptr<V>,
        gc: &mut Self::Gc<V>,
        copy: impl FnOnce(&V) -> V,
    ) -> &'a mut V;

    /// Disposes of something the working tree no longer holds.
    fn discard<T, V>(p: Self::Ptr<T>, gc: &mut Self::Gc<V>);
}

/// A node or collision list: copied by copying its pointers ([`Sharing::alias`]).
pub(crate) trait Part<S: Sharing>: Husk + Sized {
    /// Whether a bitwise copy of the value is such a copy (no buffer of its own), so
    /// [`Owning`] copies it with one `memcpy`.
    const BITWISE: bool;

    /// # Safety
    ///
    /// As for [`Sharing::alias`]: under [`Owning`] the original becomes a husk.
    unsafe fn copy(&self) -> Self;
}

/// Shared nodes are reference counted ([`WriterRc`]); a clone of the map is one more
/// reference to its root. For maps cloned as values (the pattern index's children).
pub(crate) enum Counted {}

impl Sharing for Counted {
    type Ptr<T> = WriterRc<T>;
    type Gc<V> = ();

    #[inline]
    fn new<T, V>(value: T, _: &()) -> WriterRc<T> {
        WriterRc::new(value)
    }

    #[inline]
    unsafe fn alias<T>(p: &WriterRc<T>) -> WriterRc<T> {
        WriterRc::clone(p)
    }

    #[inline]
    fn make_mut<'a, T: Part<Self>, V>(p: &'a mut WriterRc<T>, _: &mut ()) -> &'a mut T {
        // SAFETY: under `Counted`, `copy` takes a counted reference to each child.
        WriterRc::make_mut_with(p, |node| unsafe { node.copy() })
    }

    #[inline]
    fn make_mut_entry<'a, V>(
        p: &'a mut WriterRc<V>,
        _: &mut (),
        copy: impl FnOnce(&V) -> V,
    ) -> &'a mut V {
        WriterRc::make_mut_with(p, copy)
    }

    #[inline]
    fn discard<T, V>(p: WriterRc<T>, _: &mut ()) {
        drop(p);
    }
}

/// Every node and entry has one owner, the working map; published clones are views
/// kept valid by per-publication garbage (see [`garbage`](super::garbage)). For the
/// snapshot's topics.
pub(crate) enum Owning {}

/// The working map's side of [`Owning`].
pub(crate) struct Epoch<V> {
    /// Publications so far, plus one: what new allocations are stamped with.
    current: u64,
    /// What this epoch stopped pointing at, for views published before it.
    garbage: Garbage<V>,
}

impl<V> Default for Epoch<V> {
    fn default() -> Self {
        Self {
            current: 1,
            garbage: Garbage::default(),
        }
    }
}

impl Sharing for Owning {
    type Ptr<T> = Owned<T>;
    type Gc<V> = Epoch<V>;

    #[inline]
    fn new<T, V>(value: T, gc: &Epoch<V>) -> Owned<T> {
        Owned::new(value, gc.current)
    }

    #[inline]
    unsafe fn alias<T>(p: &Owned<T>) -> Owned<T> {
        // SAFETY: passed on to the caller.
        unsafe { p.alias() }
    }

    #[inline]
    fn make_mut<'a, T: Part<Self>, V>(p: &'a mut Owned<T>, gc: &mut Epoch<V>) -> &'a mut T {
        if !p.made_in(gc.current) {
            // SAFETY: the copy takes over the node's children (aliases); the original
            // goes to the garbage as a husk, freed without them. `BITWISE`: a bitwise
            // copy is such a copy.
            unsafe {
                if T::BITWISE {
                    Owned::replace_with_bitwise_copy(p, gc.current, &mut gc.garbage);
                } else {
                    let copy = p.copy();
                    Owned::replace_with_copy(p, copy, gc.current, &mut gc.garbage);
                }
            }
        }
        p.get_mut()
    }

    #[inline]
    fn make_mut_entry<'a, V>(
        p: &'a mut Owned<V>,
        gc: &mut Epoch<V>,
        copy: impl FnOnce(&V) -> V,
    ) -> &'a mut V {
        if !p.made_in(gc.current) {
            let copy = copy(p);
            Owned::replace_with_clone(p, copy, gc.current, &mut gc.garbage);
        }
        p.get_mut()
    }

    #[inline]
    fn discard<T, V>(p: Owned<T>, gc: &mut Epoch<V>) {
        Owned::discard(p, gc.current, &mut gc.garbage);
    }
}

/// Bits of the hash consumed per level.
const BITS: u32 = 5;
/// Child slots per node.
const WIDTH: usize = 1 << BITS;
/// Selects a level's bits.
const FRAGMENT_MASK: u64 = (1 << BITS) - 1;
/// Children a [`Sparse`] node holds; one more turns it [`Dense`]. Seven: their slot
/// numbers fit beside the tag and pointer of the parent's 16-byte slot ([`Frags`]), and
/// at 100,000 topics about 1% of bottom-level nodes (three children each, on average)
/// outgrow it.
const SPARSE_MAX: usize = 7;
/// A [`Dense`] node left with this many children or fewer turns sparse again: below
/// [`SPARSE_MAX`], so a topic coming and going at the boundary does not flip the node's
/// shape (and copy it) each time.
const DENSE_MIN: usize = 3;
/// A [`Sparse`] node's slot number for an unused position: never a fragment (0..32).
const NO_FRAG: u8 = 0xFF;

/// The map. With [`Counted`] sharing a clone is one increment; with [`Owning`] it is a
/// view that owns nothing, valid while the garbage of the epochs after it lives.
pub(crate) struct TopicMap<V, S: Sharing = Counted> {
    root: ManuallyDrop<S::Ptr<Dense<V, S>>>,
    len: usize,
    /// The writer's side (epoch and garbage, under [`Owning`]).
    gc: S::Gc<V>,
    /// A published view: owns no node.
    view: bool,
}

impl<V> Clone for TopicMap<V, Counted> {
    /// One more reference to the root: the copies share every node until one changes.
    /// (An [`Owning`] map is not `Clone`: its only copy is a publication's view,
    /// [`TopicMap::publish`].)
    fn clone(&self) -> Self {
        Self {
            // SAFETY: a `Counted` alias is a counted reference.
            root: ManuallyDrop::new(unsafe { Counted::alias(&self.root) }),
            len: self.len,
            gc: (),
            view: false,
        }
    }
}

impl<V, S: Sharing> Drop for TopicMap<V, S> {
    fn drop(&mut self) {
        if !self.view {
            // SAFETY: dropped once, here; a view's root is an alias it does not own.
            unsafe { ManuallyDrop::drop(&mut self.root) };
        }
    }
}

/// A child slot. Sixteen bytes: a tag and a pointer.
#[derive(Default)]
enum Child<V, S: Sharing> {
    /// Nothing here.
    #[default]
    Empty,
    /// One entry.
    Leaf(S::Ptr<V>),
    /// Entries whose hashes agree on the bits consumed so far, one level down; with the
    /// node's slot numbers, so a lookup finds the child's position without reading the
    /// node's header: the one line of the node it reads is the child's.
    Sparse(Frags, S::Ptr<Sparse<V, S>>),
    /// The same, for a node of more than [`SPARSE_MAX`] children.
    Dense(S::Ptr<Dense<V, S>>),
    /// Entries whose full 64-bit hashes are equal (different names).
    Collision(S::Ptr<Collisions<V, S>>),
}

impl<V, S: Sharing> Child<V, S> {
    /// Whether this is an inner node (whose place in the trie fixes the bits its
    /// children agree on, so it cannot move up a level).
    fn is_node(&self) -> bool {
        matches!(self, Child::Sparse(..) | Child::Dense(_))
    }

    /// A copy of the slot, its pointer aliased ([`Sharing::alias`]).
    ///
    /// # Safety
    ///
    /// As for [`Sharing::alias`].
    #[inline]
    unsafe fn copy(&self) -> Self {
        // SAFETY: passed on to the caller.
        unsafe {
            match self {
                Child::Empty => Child::Empty,
                Child::Leaf(v) => Child::Leaf(S::alias(v)),
                Child::Sparse(frags, n) => Child::Sparse(*frags, S::alias(n)),
                Child::Dense(n) => Child::Dense(S::alias(n)),
                Child::Collision(c) => Child::Collision(S::alias(c)),
            }
        }
    }
}

/// A node with every slot present: slot `i` is `children[i]`.
struct Dense<V, S: Sharing> {
    children: [Child<V, S>; WIDTH],
    /// Slots that are not [`Child::Empty`] (the writer's, for turning sparse).
    occupied: usize,
}

impl<V, S: Sharing> Part<S> for Dense<V, S> {
    const BITWISE: bool = true;

    /// The writer's path copy, touching only occupied slots: the array's own `clone`
    /// goes through a drop guard per element, and a subscribe–unsubscribe round trip at
    /// 1,000 topics took 5,942 instructions per call with it against 5,749 this way
    /// (callgrind, `benches/floor_callgrind.rs mutate_pre`).
    unsafe fn copy(&self) -> Self {
        Self {
            // SAFETY: passed on to the caller.
            children: unsafe { copy_children(&self.children) },
            occupied: self.occupied,
        }
    }
}

impl<V, S: Sharing> Husk for Dense<V, S> {
    unsafe fn drop_husk(_: *mut Self) {
        // Every child belongs to the copy; nothing else is owned.
    }
}

/// A copy of `children`, touching only the occupied slots.
///
/// # Safety
///
/// As for [`Sharing::alias`].
#[inline]
unsafe fn copy_children<V, S: Sharing, const N: usize>(
    children: &[Child<V, S>; N],
) -> [Child<V, S>; N] {
    let mut copy: [Child<V, S>; N] = std::array::from_fn(|_| Child::Empty);
    for (to, from) in copy.iter_mut().zip(children) {
        if !matches!(from, Child::Empty) {
            // `to` is still `Empty`: forgetting it skips a call to drop nothing.
            // SAFETY: passed on to the caller.
            std::mem::forget(std::mem::replace(to, unsafe { from.copy() }));
        }
    }
    copy
}

/// A node of at most [`SPARSE_MAX`] children, packed at the front of `children` in the
/// order of the slot numbers its parent's [`Child::Sparse`] holds.
struct Sparse<V, S: Sharing> {
    children: [Child<V, S>; SPARSE_MAX],
}

impl<V, S: Sharing> Part<S> for Sparse<V, S> {
    const BITWISE: bool = true;

    unsafe fn copy(&self) -> Self {
        Self {
            // SAFETY: passed on to the caller.
            children: unsafe { copy_children(&self.children) },
        }
    }
}

impl<V, S: Sharing> Husk for Sparse<V, S> {
    unsafe fn drop_husk(_: *mut Self) {
        // Every child belongs to the copy; nothing else is owned.
    }
}

/// Entries whose full 64-bit hashes are equal, in no order.
struct Collisions<V, S: Sharing>(Vec<S::Ptr<V>>);

impl<V, S: Sharing> Part<S> for Collisions<V, S> {
    /// The copy needs a buffer of its own.
    const BITWISE: bool = false;

    unsafe fn copy(&self) -> Self {
        // SAFETY: passed on to the caller.
        Self(
            self.0
                .iter()
                .map(|entry| unsafe { S::alias(entry) })
                .collect(),
        )
    }
}

impl<V, S: Sharing> Husk for Collisions<V, S> {
    unsafe fn drop_husk(this: *mut Self) {
        // SAFETY: the copy took over the entries; the buffer is still the husk's.
        unsafe {
            (*this).0.set_len(0);
            std::ptr::drop_in_place(this);
        }
    }
}
/// A sparse node's slot numbers: byte `i` is `children[i]`'s, [`NO_FRAG`] past the last.
#[derive(Clone, Copy)]
struct Frags([u8; SPARSE_MAX]);

// Beside the tag, in the padding before the pointer: a slot stays 16 bytes.
const _: () = assert!(std::mem::size_of::<Child<(), Counted>>() == 16);

impl Frags {
    const NONE: Self = Self([NO_FRAG; SPARSE_MAX]);

    /// The slot numbers as one word, [`NO_FRAG`] in the bytes past [`SPARSE_MAX`].
    #[inline(always)]
    fn word(self) -> u64 {
        let mut bytes = [NO_FRAG; 8];
        bytes[..SPARSE_MAX].copy_from_slice(&self.0);
        u64::from_le_bytes(bytes)
    }

    /// Position of slot `frag`'s child, if the node has one: the lookup path.
    #[inline(always)]
    fn find(self, frag: usize) -> Option<usize> {
        find_byte(self.word(), frag as u8)
    }

    /// Children held.
    fn len(self) -> usize {
        // The byte past `SPARSE_MAX` is always `NO_FRAG`, so there is always one.
        find_byte(self.word(), NO_FRAG).unwrap_or(SPARSE_MAX)
    }

    fn get(self, position: usize) -> usize {
        usize::from(self.0[position])
    }

    fn set(&mut self, position: usize, frag: u8) {
        self.0[position] = frag;
    }
}

/// `a == b`, without a call to `memcmp` for names of 8 to 16 bytes (most topic names:
/// `user.000123`, `room.lobby`): two overlapping 8-byte words cover such a name. Saves
/// about 15 instructions per lookup by `&str`.
#[inline(always)]
fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let len = a.len();
    if len != b.len() {
        return false;
    }
    if (8..=16).contains(&len) {
        let word = |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().unwrap());
        return word(a, 0) == word(b, 0) && word(a, len - 8) == word(b, len - 8);
    }
    a == b
}

/// Whether a stored entry's name `stored` is `key`: the same allocation (a `Topic`
/// handle sharing the stored name, as the writer's own records do) without reading the
/// bytes, else [`same_name`]. The writer's path (lookups check the hash first).
#[inline(always)]
fn is_named(stored: &str, key: &str) -> bool {
    std::ptr::eq(stored, key) || same_name(stored, key)
}

/// The child slot `hash` selects at the level that starts at bit `shift`.
#[inline(always)]
fn fragment(hash: u64, shift: u32) -> usize {
    ((hash >> shift) & FRAGMENT_MASK) as usize
}

/// The position of the first byte of `word` equal to `byte` (least significant first),
/// if any: the classic zero-byte test on `word ^ byte×8`. A borrow can only mark a byte
/// above a real zero byte, so the lowest mark is exact.
#[inline(always)]
fn find_byte(word: u64, byte: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let x = word ^ (ONES * u64::from(byte));
    let zeros = x.wrapping_sub(ONES) & !x & HIGHS;
    (zeros != 0).then(|| (zeros.trailing_zeros() / 8) as usize)
}

const _: () = assert!(std::mem::size_of::<Child<(), Owning>>() == 16);

impl<V, S: Sharing> Dense<V, S> {
    fn empty() -> Self {
        Self {
            children: Default::default(),
            occupied: 0,
        }
    }

    /// The same children as a sparse node (at most [`SPARSE_MAX`]), leaving this one
    /// empty.
    fn take_into_sparse(&mut self) -> (Frags, Sparse<V, S>) {
        let (mut frags, mut sparse) = (Frags::NONE, Sparse::empty());
        for (frag, child) in self.children.iter_mut().enumerate() {
            if !matches!(child, Child::Empty) {
                sparse.push(&mut frags, frag, std::mem::take(child));
            }
        }
        self.occupied = 0;
        (frags, sparse)
    }
}

impl<V, S: Sharing> Sparse<V, S> {
    fn empty() -> Self {
        Self {
            children: Default::default(),
        }
    }

    /// Adds `child` in slot `frag` (not yet occupied; the node is not full).
    fn push(&mut self, frags: &mut Frags, frag: usize, child: Child<V, S>) {
        let position = frags.len();
        frags.set(position, frag as u8);
        self.children[position] = child;
    }

    /// Drops position `position` (whose child is already `Empty`), keeping the rest
    /// packed: the last child moves into its place.
    fn remove_at(&mut self, frags: &mut Frags, position: usize) {
        let last = frags.len() - 1;
        self.children.swap(position, last);
        frags.set(position, frags.get(last) as u8);
        frags.set(last, NO_FRAG);
    }

    /// The same children as a dense node, leaving this one empty.
    fn take_into_dense(&mut self, frags: Frags) -> Dense<V, S> {
        let mut dense = Dense::empty();
        for position in 0..frags.len() {
            dense.children[frags.get(position)] = std::mem::take(&mut self.children[position]);
            dense.occupied += 1;
        }
        dense
    }
}

impl<V: Keyed, S: Sharing> Default for TopicMap<V, S> {
    fn default() -> Self {
        let gc = S::Gc::default();
        Self {
            root: ManuallyDrop::new(S::new(Dense::empty(), &gc)),
            len: 0,
            gc,
            view: false,
        }
    }
}

impl<V: Keyed, S: Sharing> TopicMap<V, S> {
    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The entry named `key`, whose hash is `hash`.
    #[inline(always)]
    pub(crate) fn get(&self, key: &str, hash: u64) -> Option<&V> {
        let mut child = &self.root.children[fragment(hash, 0)];
        let mut shift = BITS;
        loop {
            match child {
                Child::Dense(node) => child = &node.children[fragment(hash, shift)],
                Child::Sparse(frags, node) => {
                    child = &node.children[frags.find(fragment(hash, shift))?];
                }
                Child::Leaf(entry) => {
                    // The same allocation (a `Topic` handle sharing the stored name) is
                    // the same name: no need to read its bytes.
                    let same = entry.key_hash() == hash
                        && (std::ptr::eq(entry.key(), key) || same_name(entry.key(), key));
                    return same.then_some(&**entry);
                }
                Child::Collision(entries) => {
                    return entries.0.iter().find(|e| e.key() == key).map(|e| &**e);
                }
                Child::Empty => return None,
            }
            shift += BITS;
        }
    }

    /// Mutable access to the entry named `key`, copying the path to it (and the entry)
    /// where a published snapshot still shares them.
    pub(crate) fn get_mut(&mut self, key: &str, hash: u64) -> Option<&mut V> {
        self.get_mut_with(key, hash, V::clone)
    }

    /// [`Self::get_mut`], copying the entry (if it must be copied) with `copy` instead of
    /// `Clone`: the writer builds the changed entry directly (a subscriber list with room
    /// for one more, or without the one leaving) instead of cloning it and then changing
    /// the clone, which may reallocate it.
    pub(crate) fn get_mut_with(
        &mut self,
        key: &str,
        hash: u64,
        copy: impl FnOnce(&V) -> V,
    ) -> Option<&mut V> {
        debug_assert!(!self.view, "a published view is never changed");
        // Check first so a miss copies nothing.
        self.get(key, hash)?;
        let root = S::make_mut(&mut self.root, &mut self.gc);
        get_mut_in(
            &mut root.children[fragment(hash, 0)],
            BITS,
            key,
            hash,
            &mut self.gc,
            copy,
        )
    }

    /// Inserts `value`, replacing any entry with the same name.
    pub(crate) fn insert(&mut self, value: V) {
        debug_assert!(!self.view, "a published view is never changed");
        let hash = value.key_hash();
        let value = S::new(value, &self.gc);
        let root = S::make_mut(&mut self.root, &mut self.gc);
        if insert_below(root, 0, hash, value, &mut self.gc) {
            self.len += 1;
        }
    }

    /// Removes the entry named `key`. Returns whether there was one.
    pub(crate) fn remove(&mut self, key: &str, hash: u64) -> bool {
        debug_assert!(!self.view, "a published view is never changed");
        if self.get(key, hash).is_none() {
            return false;
        }
        let root = S::make_mut(&mut self.root, &mut self.gc);
        let removed = remove_below(root, 0, key, hash, &mut self.gc);
        if let Some(removed) = removed {
            self.len -= 1;
            S::discard(removed, &mut self.gc);
            return true;
        }
        false
    }

    /// Calls `f` on every entry, in no particular order.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&V)) {
        fn walk<V, S: Sharing>(child: &Child<V, S>, f: &mut impl FnMut(&V)) {
            match child {
                Child::Empty => {}
                Child::Leaf(v) => f(v),
                Child::Sparse(_, n) => n.children.iter().for_each(|c| walk(c, f)),
                Child::Dense(n) => n.children.iter().for_each(|c| walk(c, f)),
                Child::Collision(list) => list.0.iter().for_each(|v| f(v)),
            }
        }
        self.root.children.iter().for_each(|c| walk(c, &mut f));
    }
}

impl<V: Keyed> TopicMap<V, Owning> {
    /// Publishes the map: returns a *view* of it as it is now, which owns nothing, and
    /// ends the epoch, so from now on every node and entry is treated as reachable from
    /// that view. Also returns what the ended epoch stopped pointing at, which only views
    /// published *before* this one may still reach (see [`garbage`](super::garbage)).
    /// `spare`: an empty list whose buffer the next epoch reuses.
    ///
    /// # Safety
    ///
    /// The view reads nodes that later publications hand out as garbage, and the map's
    /// own nodes: the caller stops reading the view before it drops the garbage returned
    /// by any later `publish`, and before the map itself (or [`Self::into_garbage`]'s
    /// list). Dropping a view touches nothing.
    pub(crate) unsafe fn publish(&mut self, spare: Garbage<V>) -> (Self, Garbage<V>) {
        let view = Self {
            // SAFETY: the alias is a view's root, never dropped (`view: true`); what it
            // reaches stays allocated by the caller's promise above.
            root: ManuallyDrop::new(unsafe { Owning::alias(&self.root) }),
            len: self.len,
            gc: Default::default(),
            view: true,
        };
        self.gc.current += 1;
        (view, std::mem::replace(&mut self.gc.garbage, spare))
    }

    /// Gives the whole working map up: everything in it, and its pending garbage, as
    /// garbage of this epoch (the writer closing: views may still reach it).
    pub(crate) fn into_garbage(mut self) -> Garbage<V> {
        let mut garbage = std::mem::take(&mut self.gc.garbage);
        garbage.push_whole(self);
        garbage
    }
}

/// `get_mut` below a slot whose node (if it holds one) starts at bit `shift`.
fn get_mut_in<'a, V: Keyed, S: Sharing>(
    slot: &'a mut Child<V, S>,
    shift: u32,
    key: &str,
    hash: u64,
    gc: &mut S::Gc<V>,
    copy: impl FnOnce(&V) -> V,
) -> Option<&'a mut V> {
    match slot {
        Child::Empty => None,
        Child::Leaf(entry) => {
            is_named(entry.key(), key).then(|| S::make_mut_entry(entry, gc, copy))
        }
        Child::Dense(node) => {
            let node = S::make_mut(node, gc);
            get_mut_in(
                &mut node.children[fragment(hash, shift)],
                shift + BITS,
                key,
                hash,
                gc,
                copy,
            )
        }
        Child::Sparse(frags, node) => {
            let position = frags.find(fragment(hash, shift))?;
            let node = S::make_mut(node, gc);
            get_mut_in(
                &mut node.children[position],
                shift + BITS,
                key,
                hash,
                gc,
                copy,
            )
        }
        Child::Collision(entries) => {
            let entries = S::make_mut(entries, gc);
            let entry = entries.0.iter_mut().find(|e| e.key() == key)?;
            Some(S::make_mut_entry(entry, gc, copy))
        }
    }
}

/// Inserts into dense node `node`, which starts at bit `shift`. Returns whether a new
/// entry was added (false: an existing one was replaced).
fn insert_below<V: Keyed, S: Sharing>(
    node: &mut Dense<V, S>,
    shift: u32,
    hash: u64,
    value: S::Ptr<V>,
    gc: &mut S::Gc<V>,
) -> bool {
    let slot = &mut node.children[fragment(hash, shift)];
    if matches!(slot, Child::Empty) {
        *slot = Child::Leaf(value);
        node.occupied += 1;
        return true;
    }
    insert_in(slot, shift + BITS, hash, value, gc)
}

/// Inserts into an occupied slot whose node (if it holds one) starts at bit `shift`.
fn insert_in<V: Keyed, S: Sharing>(
    slot: &mut Child<V, S>,
    shift: u32,
    hash: u64,
    value: S::Ptr<V>,
    gc: &mut S::Gc<V>,
) -> bool {
    match slot {
        Child::Empty => {
            *slot = Child::Leaf(value);
            true
        }
        Child::Dense(node) => insert_below(S::make_mut(node, gc), shift, hash, value, gc),
        Child::Sparse(frags, node) => {
            let node = S::make_mut(node, gc);
            let frag = fragment(hash, shift);
            if let Some(position) = frags.find(frag) {
                return insert_in(&mut node.children[position], shift + BITS, hash, value, gc);
            }
            if frags.len() < SPARSE_MAX {
                node.push(frags, frag, Child::Leaf(value));
                return true;
            }
            let mut dense = node.take_into_dense(*frags);
            dense.children[frag] = Child::Leaf(value);
            dense.occupied += 1;
            // The emptied sparse node was made mutable above: dropping it frees only it.
            *slot = Child::Dense(S::new(dense, gc));
            true
        }
        Child::Leaf(existing) if existing.key() == value.key() => {
            let replaced = std::mem::replace(existing, value);
            S::discard(replaced, gc);
            false
        }
        Child::Leaf(existing) if existing.key_hash() == hash => {
            let Child::Leaf(existing) = std::mem::take(slot) else {
                unreachable!("matched a leaf")
            };
            *slot = Child::Collision(S::new(Collisions(vec![existing, value]), gc));
            true
        }
        Child::Leaf(existing) => {
            let existing_hash = existing.key_hash();
            let moved = std::mem::take(slot);
            *slot = split(shift, moved, existing_hash, value, hash, gc);
            true
        }
        Child::Collision(entries) if entries.0[0].key_hash() == hash => {
            let entries = S::make_mut(entries, gc);
            match entries.0.iter_mut().find(|e| e.key() == value.key()) {
                Some(existing) => {
                    let replaced = std::mem::replace(existing, value);
                    S::discard(replaced, gc);
                    false
                }
                None => {
                    entries.0.push(value);
                    true
                }
            }
        }
        Child::Collision(entries) => {
            let existing_hash = entries.0[0].key_hash();
            let moved = std::mem::take(slot);
            *slot = split(shift, moved, existing_hash, value, hash, gc);
            true
        }
    }
}

/// A sparse node (or chain of them) starting at bit `shift`, holding `existing` and the
/// new leaf, whose hashes differ somewhere at or above bit `shift`.
fn split<V, S: Sharing>(
    shift: u32,
    existing: Child<V, S>,
    existing_hash: u64,
    value: S::Ptr<V>,
    hash: u64,
    gc: &mut S::Gc<V>,
) -> Child<V, S> {
    let (a, b) = (fragment(existing_hash, shift), fragment(hash, shift));
    let (mut frags, mut node) = (Frags::NONE, Sparse::empty());
    if a == b {
        let below = split(shift + BITS, existing, existing_hash, value, hash, gc);
        node.push(&mut frags, a, below);
    } else {
        node.push(&mut frags, a, existing);
        node.push(&mut frags, b, Child::Leaf(value));
    }
    Child::Sparse(frags, S::new(node, gc))
}

/// Removes from dense node `node`, which starts at bit `shift`.
fn remove_below<V: Keyed, S: Sharing>(
    node: &mut Dense<V, S>,
    shift: u32,
    key: &str,
    hash: u64,
    gc: &mut S::Gc<V>,
) -> Option<S::Ptr<V>> {
    let slot = &mut node.children[fragment(hash, shift)];
    let removed = remove_in(slot, shift + BITS, key, hash, gc)?;
    if matches!(slot, Child::Empty) {
        node.occupied -= 1;
    }
    Some(removed)
}

/// Removes from a slot whose node (if it holds one) starts at bit `shift`, then keeps
/// the trie canonical ([`tidy`]).
fn remove_in<V: Keyed, S: Sharing>(
    slot: &mut Child<V, S>,
    shift: u32,
    key: &str,
    hash: u64,
    gc: &mut S::Gc<V>,
) -> Option<S::Ptr<V>> {
    let removed = match slot {
        Child::Empty => return None,
        Child::Leaf(entry) => {
            if !is_named(entry.key(), key) {
                return None;
            }
            let Child::Leaf(entry) = std::mem::take(slot) else {
                unreachable!("matched a leaf")
            };
            return Some(entry);
        }
        Child::Collision(entries) => {
            let list = S::make_mut(entries, gc);
            let index = list.0.iter().position(|e| e.key() == key)?;
            let removed = list.0.swap_remove(index);
            if list.0.len() == 1 {
                let only = list.0.pop().expect("one left");
                // The emptied list was made mutable above: dropping it frees only it.
                *slot = Child::Leaf(only);
            }
            return Some(removed);
        }
        Child::Dense(node) => remove_below(S::make_mut(node, gc), shift, key, hash, gc)?,
        Child::Sparse(frags, node) => {
            let position = frags.find(fragment(hash, shift))?;
            let node = S::make_mut(node, gc);
            let removed = remove_in(&mut node.children[position], shift + BITS, key, hash, gc)?;
            if matches!(node.children[position], Child::Empty) {
                node.remove_at(frags, position);
            }
            removed
        }
    };
    tidy(slot, gc);
    Some(removed)
}

/// Keeps the trie canonical after a removal below `slot`, so depth shrinks as topics
/// go: a node left empty goes; one left with a single leaf (or collision list) is
/// replaced by it; a dense node left with [`DENSE_MIN`] children or fewer turns sparse.
/// The node replaced is always one the removal made mutable, emptied before it is
/// dropped: dropping it frees only it.
fn tidy<V, S: Sharing>(slot: &mut Child<V, S>, gc: &mut S::Gc<V>) {
    match slot {
        Child::Dense(node) if node.occupied <= DENSE_MIN => {
            let (frags, sparse) = S::make_mut(node, gc).take_into_sparse();
            *slot = Child::Sparse(frags, S::new(sparse, gc));
            tidy(slot, gc);
        }
        Child::Sparse(frags, node) if frags.len() <= 1 => {
            let node = S::make_mut(node, gc);
            if frags.len() == 0 {
                *slot = Child::Empty;
            } else if !node.children[0].is_node() {
                let only = std::mem::take(&mut node.children[0]);
                *slot = only;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Clone, Debug, PartialEq)]
    struct Entry {
        name: String,
        hash: u64,
        value: u32,
        /// Counts the entry's copies: none may leak or be dropped twice.
        witness: std::sync::Arc<()>,
    }

    thread_local! {
        static WITNESS: std::sync::Arc<()> = std::sync::Arc::new(());
    }

    /// Copies of entries alive on this thread.
    fn entries_alive() -> usize {
        WITNESS.with(|w| std::sync::Arc::strong_count(w) - 1)
    }

    impl Keyed for Entry {
        fn key(&self) -> &str {
            &self.name
        }
        fn key_hash(&self) -> u64 {
            self.hash
        }
    }

    fn entry(name: &str, hash: u64, value: u32) -> Entry {
        Entry {
            name: name.to_owned(),
            hash,
            value,
            witness: WITNESS.with(std::sync::Arc::clone),
        }
    }

    /// A tiny deterministic generator, so failures reproduce.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Publishes `map` as the writer does: a clone, and under [`Owning`] the end of the
    /// epoch, whose garbage the caller keeps while the clone lives.
    trait Publish: Sharing + Sized {
        fn publish(
            map: &mut TopicMap<Entry, Self>,
            garbage: &mut Vec<Garbage<Entry>>,
        ) -> TopicMap<Entry, Self>;
    }

    impl Publish for Counted {
        fn publish(
            map: &mut TopicMap<Entry, Self>,
            _: &mut Vec<Garbage<Entry>>,
        ) -> TopicMap<Entry, Self> {
            map.clone()
        }
    }

    impl Publish for Owning {
        fn publish(
            map: &mut TopicMap<Entry, Self>,
            garbage: &mut Vec<Garbage<Entry>>,
        ) -> TopicMap<Entry, Self> {
            // SAFETY: the test reads its views only while `garbage` and the map live.
            let (view, stopped) = unsafe { map.publish(Garbage::default()) };
            garbage.push(stopped);
            view
        }
    }

    /// Random inserts/updates/removes against a `HashMap`, with hashes drawn from a small
    /// space so that shared prefixes, splits and full collisions all happen.
    #[test]
    fn matches_a_hashmap_under_random_operations() {
        random_operations::<Counted>();
        assert_eq!(entries_alive(), 0, "entries leaked or freed twice");
        random_operations::<Owning>();
        assert_eq!(entries_alive(), 0, "entries leaked or freed twice");
    }

    fn random_operations<S: Publish>() {
        for seed in 1..40u64 {
            let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut map = TopicMap::<Entry, S>::default();
            let mut garbage = Vec::new();
            let mut model: HashMap<String, (u64, u32)> = HashMap::new();
            let mut published = Vec::new();
            for step in 0..600 {
                let name = format!("t{}", rng.next() % 64);
                // Hash derived from the name but squeezed: many prefix sharings and
                // exact collisions (names ≡ mod 16 collide fully).
                let n: u64 = name[1..].parse().unwrap();
                let hash = (n % 16).wrapping_mul(0x0123_4567_89AB_CDEF) ^ ((n % 16) << 60);
                match rng.next() % 4 {
                    0 | 1 => {
                        let value = step;
                        map.insert(entry(&name, hash, value));
                        model.insert(name.clone(), (hash, value));
                    }
                    2 => {
                        let got = map.get(&name, hash).map(|e| e.value);
                        assert_eq!(map.remove(&name, hash), got.is_some());
                        let want = model.remove(&name).map(|(_, v)| v);
                        assert_eq!(got, want, "remove {name}");
                    }
                    _ => {
                        if let Some(e) = map.get_mut(&name, hash) {
                            e.value += 1_000_000;
                        }
                        if let Some((_, v)) = model.get_mut(&name) {
                            *v += 1_000_000;
                        }
                    }
                }
                assert_eq!(map.len(), model.len());
                // Old snapshots must be unaffected by later changes.
                if step % 50 == 0 {
                    published.push((S::publish(&mut map, &mut garbage), model.clone()));
                }
            }
            for (snapshot, expected) in published.iter().chain([(map, model)].iter()) {
                let mut seen = 0;
                snapshot.for_each(|e| {
                    seen += 1;
                    assert_eq!(expected.get(&e.name), Some(&(e.hash, e.value)));
                });
                assert_eq!(seen, expected.len());
                for (name, (hash, value)) in expected {
                    assert_eq!(snapshot.get(name, *hash).map(|e| e.value), Some(*value));
                }
            }
        }
    }

    /// Walks every node and checks the shape invariants: sparse nodes packed, with
    /// slot numbers that match their children; dense counts right; no node that
    /// `tidy` should have replaced; every entry on the path its hash selects.
    fn check_shape<S: Sharing>(map: &TopicMap<Entry, S>) -> (usize, usize) {
        fn walk<S: Sharing>(
            child: &Child<Entry, S>,
            shift: u32,
            path: u64,
            shapes: &mut (usize, usize),
        ) {
            let prefix = |hash: u64| hash & 1u64.checked_shl(shift).map_or(u64::MAX, |b| b - 1);
            match child {
                Child::Empty => {}
                Child::Leaf(e) => assert_eq!(prefix(e.hash), path, "{} misplaced", e.name),
                Child::Collision(list) => {
                    let list = &list.0;
                    assert!(list.len() >= 2);
                    assert!(list.iter().all(|e| e.hash == list[0].hash));
                    assert_eq!(prefix(list[0].hash), path);
                }
                Child::Sparse(frags, node) => {
                    shapes.0 += 1;
                    let len = frags.len();
                    assert!((1..=SPARSE_MAX).contains(&len));
                    assert!(len >= 2 || node.children[0].is_node(), "untidy sparse node");
                    for (position, c) in node.children.iter().enumerate() {
                        assert_eq!(position < len, !matches!(c, Child::Empty));
                        if position < len {
                            let frag = frags.get(position);
                            assert!(frag < WIDTH);
                            assert_eq!(frags.find(frag), Some(position));
                            walk(c, shift + BITS, path | ((frag as u64) << shift), shapes);
                        }
                    }
                }
                Child::Dense(node) => {
                    shapes.1 += 1;
                    let occupied = node.children.iter().filter(|c| !matches!(c, Child::Empty));
                    assert_eq!(occupied.count(), node.occupied);
                    assert!(node.occupied > DENSE_MIN, "dense node should be sparse");
                    for (frag, c) in node.children.iter().enumerate() {
                        walk(c, shift + BITS, path | ((frag as u64) << shift), shapes);
                    }
                }
            }
        }
        let mut shapes = (0, 0);
        let occupied = map.root.children.iter();
        let occupied = occupied.filter(|c| !matches!(c, Child::Empty)).count();
        assert_eq!(occupied, map.root.occupied);
        for (frag, c) in map.root.children.iter().enumerate() {
            walk(c, BITS, frag as u64, &mut shapes);
        }
        shapes
    }

    /// Random inserts and removes of a few hundred names with hashes drawn from spaces
    /// of different shapes, so nodes grow from sparse to dense and shrink back at every
    /// level; checked against a `HashMap` and the shape invariants, and old snapshots
    /// must stay as they were.
    #[test]
    fn node_shapes_change_both_ways_under_random_operations() {
        shapes_both_ways::<Counted>();
        assert_eq!(entries_alive(), 0, "entries leaked or freed twice");
        shapes_both_ways::<Owning>();
        assert_eq!(entries_alive(), 0, "entries leaked or freed twice");
    }

    fn shapes_both_ways<S: Publish>() {
        let spaces: [fn(u64) -> u64; 4] = [
            |n| n.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            // Ten bits: dense nodes at the second level, many collisions.
            |n| n.wrapping_mul(0x9E37_79B9_7F4A_7C15) & 0x3FF,
            // Bits 5..14 only: every entry under one root slot.
            |n| (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) << 5,
            // The top bits vary last: the deepest levels, shift 60.
            |n| (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) & 0xFF) << 56,
        ];
        let (mut most_sparse, mut most_dense) = (0, 0);
        for (which, space) in spaces.iter().enumerate() {
            for seed in 1..6u64 {
                let mut rng = XorShift(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) + which as u64);
                let mut map = TopicMap::<Entry, S>::default();
                let mut garbage = Vec::new();
                let mut model: HashMap<String, (u64, u32)> = HashMap::new();
                let mut published = Vec::new();
                for step in 0..3_000u32 {
                    let n = rng.next() % 400;
                    let name = format!("n{n}");
                    let hash = space(n);
                    // Grow for the first half, shrink for the second.
                    let grow = if step < 1_500 { 3 } else { 1 };
                    if rng.next() % 4 < grow {
                        map.insert(entry(&name, hash, step));
                        model.insert(name, (hash, step));
                    } else {
                        let got = map.get(&name, hash).map(|e| e.value);
                        assert_eq!(map.remove(&name, hash), got.is_some());
                        assert_eq!(got, model.remove(&name).map(|(_, v)| v), "remove {name}");
                    }
                    assert_eq!(map.len(), model.len());
                    if step % 100 == 0 {
                        let (sparse, dense) = check_shape(&map);
                        most_sparse = most_sparse.max(sparse);
                        most_dense = most_dense.max(dense);
                    }
                    if step % 500 == 0 {
                        published.push((S::publish(&mut map, &mut garbage), model.clone()));
                    }
                }
                published.push((map, model));
                for (snapshot, expected) in &published {
                    check_shape(snapshot);
                    let mut seen = 0;
                    snapshot.for_each(|e| {
                        seen += 1;
                        assert_eq!(expected.get(&e.name), Some(&(e.hash, e.value)));
                    });
                    assert_eq!(seen, expected.len());
                    for (name, (hash, value)) in expected {
                        assert_eq!(snapshot.get(name, *hash).map(|e| e.value), Some(*value));
                        assert!(snapshot.get(&format!("{name}x"), *hash).is_none());
                    }
                }
            }
        }
        assert!(most_sparse > 0 && most_dense > 0, "both shapes occurred");
    }

    #[test]
    fn find_byte_finds_the_first_match_only() {
        for position in 0..8 {
            for byte in [0u8, 1, 31, 0x7F, 0x80, 0xFE, 0xFF] {
                let other = if byte == 0xFF { 0 } else { 0xFF };
                let mut word = u64::from_ne_bytes([other; 8]);
                word = (word & !(0xFF << (8 * position))) | (u64::from(byte) << (8 * position));
                assert_eq!(find_byte(word, byte), Some(position), "{word:#x} {byte}");
                // A second match higher up does not move the answer.
                let both = word & !(0xFF << 56) | (u64::from(byte) << 56);
                assert_eq!(find_byte(both, byte), Some(position));
                assert_eq!(find_byte(u64::from_ne_bytes([other; 8]), byte), None);
            }
        }
        // Bytes one above the sought value (the borrow case) are not matches.
        assert_eq!(find_byte(0x0201_0201_0201_0201, 1), Some(0));
        assert_eq!(find_byte(0x0202_0202_0202_0202, 1), None);
        assert_eq!(find_byte(0x0102_0202_0202_0200, 0), Some(0));
        assert_eq!(find_byte(0x0100_0202_0202_0202, 0), Some(6));
    }

    #[test]
    fn same_name_agrees_with_eq() {
        // Every length around the 8..=16 word path, differing in each byte position.
        for len in 0..24 {
            let a: String = (0..len).map(|i| char::from(b'a' + i as u8)).collect();
            assert!(same_name(&a, &a.clone()), "{a:?} equals itself");
            for at in 0..len {
                let mut b = a.clone().into_bytes();
                b[at] = b'Z';
                let b = String::from_utf8(b).unwrap();
                assert!(!same_name(&a, &b), "{a:?} vs {b:?}");
            }
            assert!(!same_name(&a, &format!("{a}x")));
        }
    }

    #[test]
    fn removing_everything_leaves_an_empty_root() {
        let mut map = TopicMap::<Entry, Owning>::default();
        for i in 0..1000u32 {
            let h = u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            map.insert(entry(&i.to_string(), h, i));
        }
        for i in 0..1000u32 {
            let h = u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            assert!(map.remove(&i.to_string(), h));
        }
        assert_eq!(map.len(), 0);
        assert!(map.root.children.iter().all(|c| matches!(c, Child::Empty)));
    }
}
