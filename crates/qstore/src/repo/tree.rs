//! Reading and editing the path tree of a commit (the Merkle search tree of
//! [`crate::format::tree`]): point lookups ([`get`]), ordered scans of a key range ([`scan`]),
//! batch edits that rewrite only the nodes on the edited paths ([`edit`]), bulk builds
//! ([`build`]), diffs that skip equal subtrees by id ([`diff`]) and walks over distinct nodes
//! ([`walk_nodes`], for gc, fsck and stats).
//!
//! Every function reads nodes through a [`NodeSource`] and writes them through a
//! [`NodeSink`], so the same code runs over a repository and over an in-memory map in tests.
//!
//! How an edit stays O(k log n): a node's boundaries depend only on the ranks of its keys, so
//! the nodes of level `j` fall into *runs*, from one item of rank >= `j + 1` to the next, and
//! the nodes of a run depend on that run's items alone. An edit therefore re-cuts only the
//! runs it touches (plus the run before, when it deletes the item a run starts with), writes
//! their new nodes and hands the parent level the changed (first key, child id) items, level
//! by level up to the root, which may grow or shrink by levels.

use crate::error::{Error, Result};
use crate::format::encode_object;
use crate::format::tree::{Item, ItemValue, MAX_ITEMS, StateEntry, TreeNode, rank};
use crate::id::ObjectId;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// Where tree nodes are read from.
pub trait NodeSource {
    /// The node with this id.
    fn node(&self, id: &ObjectId) -> Result<Arc<TreeNode>>;
}

/// Where new tree nodes go.
pub trait NodeSink {
    /// Store a node (unless it exists); returns its id.
    fn put_node(&mut self, node: &TreeNode) -> Result<ObjectId>;
}

/// The id a node has once stored.
pub fn node_id(node: &TreeNode) -> ObjectId {
    encode_object(node).0
}

/// The empty tree: a leaf without items.
pub fn empty() -> TreeNode {
    TreeNode::default()
}

fn corrupt(id: &ObjectId, why: impl Into<String>) -> Error {
    Error::corrupt(format!("tree {}", id.short()), why)
}

/// The child of item `i` of inner node `parent`, checked to be one level down.
fn child(src: &dyn NodeSource, parent: &TreeNode, i: usize) -> Result<(ObjectId, Arc<TreeNode>)> {
    let item = &parent.items[i];
    let ItemValue::Child { id, .. } = &item.value else {
        return Err(Error::corrupt(
            "tree",
            format!("a state in a level-{} node", parent.level),
        ));
    };
    let n = src.node(id)?;
    if n.level + 1 != parent.level {
        return Err(corrupt(
            id,
            format!(
                "a level-{} node below a level-{} node",
                n.level, parent.level
            ),
        ));
    }
    Ok((*id, n))
}

/// The child of an inner node whose range holds `key` (the first child for a key below all).
fn child_index(node: &TreeNode, key: &str) -> usize {
    node.items
        .partition_point(|it| it.key.as_str() <= key)
        .saturating_sub(1)
}

/// The state at `key`, reading one node per level.
pub fn get(src: &dyn NodeSource, root: &ObjectId, key: &str) -> Result<Option<StateEntry>> {
    let mut n = src.node(root)?;
    while n.level > 0 {
        if n.items.first().is_none_or(|f| key < f.key.as_str()) {
            return Ok(None);
        }
        let i = child_index(&n, key);
        n = child(src, &n, i)?.1;
    }
    Ok(n.items
        .binary_search_by(|it| it.key.as_str().cmp(key))
        .ok()
        .and_then(|i| match &n.items[i].value {
            ItemValue::State(e) => Some((**e).clone()),
            ItemValue::Child { .. } => None,
        }))
}

/// Visit the states with `lo <= key < hi` (no upper bound when `hi` is `None`) in key order,
/// reading only the nodes that overlap the range. `f` returns false to stop early.
pub fn scan(
    src: &dyn NodeSource,
    root: &ObjectId,
    lo: &str,
    hi: Option<&str>,
    f: &mut dyn FnMut(&str, &StateEntry) -> bool,
) -> Result<()> {
    let n = src.node(root)?;
    scan_node(src, &n, lo, hi, f)?;
    Ok(())
}

fn scan_node(
    src: &dyn NodeSource,
    n: &TreeNode,
    lo: &str,
    hi: Option<&str>,
    f: &mut dyn FnMut(&str, &StateEntry) -> bool,
) -> Result<bool> {
    let below_hi = |k: &str| hi.is_none_or(|h| k < h);
    if n.level == 0 {
        let start = n.items.partition_point(|it| it.key.as_str() < lo);
        for it in &n.items[start..] {
            if !below_hi(&it.key) {
                return Ok(false);
            }
            if let ItemValue::State(e) = &it.value
                && !f(&it.key, e)
            {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    for i in 0..n.items.len() {
        if !below_hi(&n.items[i].key) {
            return Ok(false);
        }
        if n.items
            .get(i + 1)
            .is_some_and(|next| next.key.as_str() <= lo)
        {
            continue;
        }
        let c = child(src, n, i)?.1;
        if !scan_node(src, &c, lo, hi, f)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The keys of every state whose path starts with `prefix` + `/`, as a scan range.
pub fn dir_range(prefix: &str) -> (String, String) {
    // '0' is the byte after '/': [p/, p0) holds exactly the keys below directory p.
    (format!("{prefix}/"), format!("{prefix}0"))
}

/// True when the tree holds a state below directory `path` (reads one path down).
pub fn has_below(src: &dyn NodeSource, root: &ObjectId, path: &str) -> Result<bool> {
    let (lo, hi) = dir_range(path);
    let mut found = false;
    scan(src, root, &lo, Some(&hi), &mut |_, _| {
        found = true;
        false
    })?;
    Ok(found)
}

/// Every state path below directory `path`, in order.
pub fn keys_below(src: &dyn NodeSource, root: &ObjectId, path: &str) -> Result<Vec<String>> {
    let (lo, hi) = dir_range(path);
    let mut keys = Vec::new();
    scan(src, root, &lo, Some(&hi), &mut |k, _| {
        keys.push(k.to_string());
        true
    })?;
    Ok(keys)
}

/// Cut the items of one level into nodes: a new node before every item (but the first) of
/// rank >= level + 1, and after every [`MAX_ITEMS`] items of a run.
fn cut(level: u8, items: Vec<Item>) -> Vec<Vec<Item>> {
    let mut out = Vec::new();
    let mut cur: Vec<Item> = Vec::new();
    let mut run = 0usize;
    for it in items {
        let natural = !cur.is_empty() && rank(&it.key) > level as u32;
        if natural {
            out.push(std::mem::take(&mut cur));
            run = 0;
        } else if run > 0 && run.is_multiple_of(MAX_ITEMS) {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(it);
        run += 1;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Reads through to the source, and remembers the nodes written by this operation so they can
/// be read back before they are durable. A node equal to one already stored (read from the
/// source during this operation) or already written is not written again.
struct Store<'a> {
    src: &'a dyn NodeSource,
    sink: &'a mut dyn NodeSink,
    fresh: HashMap<ObjectId, Arc<TreeNode>>,
    stored: std::cell::RefCell<HashSet<ObjectId>>,
}

impl<'a> Store<'a> {
    fn new(src: &'a dyn NodeSource, sink: &'a mut dyn NodeSink) -> Self {
        Store {
            src,
            sink,
            fresh: HashMap::new(),
            stored: Default::default(),
        }
    }
}

impl NodeSource for Store<'_> {
    fn node(&self, id: &ObjectId) -> Result<Arc<TreeNode>> {
        match self.fresh.get(id) {
            Some(n) => Ok(n.clone()),
            None => {
                let n = self.src.node(id)?;
                self.stored.borrow_mut().insert(*id);
                Ok(n)
            }
        }
    }
}

impl Store<'_> {
    fn put(&mut self, node: TreeNode) -> Result<(ObjectId, u64)> {
        let states = node.states();
        let id = node_id(&node);
        if self.fresh.contains_key(&id) || self.stored.borrow().contains(&id) {
            return Ok((id, states));
        }
        let written = self.sink.put_node(&node)?;
        debug_assert_eq!(written, id);
        self.fresh.insert(id, Arc::new(node));
        Ok((id, states))
    }

    /// Write the nodes of the top level `level` and above until one node is left; returns the
    /// root, collapsed to the lowest level with a single node.
    fn finish_top(&mut self, mut level: u8, mut items: Vec<Item>) -> Result<ObjectId> {
        loop {
            let mut nodes = cut(level, items);
            match nodes.len() {
                0 => return Ok(self.put(empty())?.0),
                1 => {
                    let mut node = TreeNode {
                        level,
                        items: nodes.pop().expect("one node"),
                    };
                    // A single child: that child is the root (it may be several levels down).
                    while node.level > 0 && node.items.len() == 1 {
                        let (_, c) = child(&*self, &node, 0)?;
                        node = (*c).clone();
                    }
                    return Ok(self.put(node)?.0);
                }
                _ => {
                    let mut up = Vec::with_capacity(nodes.len());
                    for n in nodes {
                        let key = n[0].key.clone();
                        let (id, states) = self.put(TreeNode { level, items: n })?;
                        up.push(Item {
                            key,
                            value: ItemValue::Child { id, states },
                        });
                    }
                    items = up;
                    level += 1;
                }
            }
        }
    }
}

/// Build a tree from states sorted by path (strictly increasing); returns the root.
pub fn build(
    src: &dyn NodeSource,
    sink: &mut dyn NodeSink,
    states: Vec<(String, StateEntry)>,
) -> Result<ObjectId> {
    let mut store = Store::new(src, sink);
    let items = states
        .into_iter()
        .map(|(key, e)| Item {
            key,
            value: ItemValue::State(Box::new(e)),
        })
        .collect();
    store.finish_top(0, items)
}

/// Apply sorted edits to sorted items: `Some` sets (inserts or replaces), `None` deletes.
fn apply_edits(items: Vec<Item>, edits: &[(String, Option<ItemValue>)]) -> Vec<Item> {
    let mut out = Vec::with_capacity(items.len() + edits.len());
    let mut it = items.into_iter().peekable();
    for (key, e) in edits {
        while it.peek().is_some_and(|i| i.key < *key) {
            out.extend(it.next());
        }
        if it.peek().is_some_and(|i| i.key == *key) {
            it.next();
        }
        if let Some(v) = e {
            out.push(Item {
                key: key.clone(),
                value: v.clone(),
            });
        }
    }
    out.extend(it);
    out
}

/// A position at one level: the nodes from the root down to the parent of the level's node,
/// each with the index of the child taken.
#[derive(Clone)]
struct Cursor {
    path: Vec<(Arc<TreeNode>, usize)>,
}

impl Cursor {
    fn indexes(&self) -> Vec<usize> {
        self.path.iter().map(|(_, i)| *i).collect()
    }

    fn parent_item(&self) -> &Item {
        let (n, i) = self.path.last().expect("a cursor has a parent");
        &n.items[*i]
    }

    /// The first key of the node under the cursor (its parent item's key).
    fn first_key(&self) -> &str {
        &self.parent_item().key
    }

    fn child_id(&self) -> ObjectId {
        match &self.parent_item().value {
            ItemValue::Child { id, .. } => *id,
            ItemValue::State(_) => ObjectId([0; 32]),
        }
    }

    fn is_leftmost(&self) -> bool {
        self.path.iter().all(|(_, i)| *i == 0)
    }

    /// Descend from the node at `depth` of the path (already set) along first or last
    /// children down to the target level's parent.
    fn descend(
        &mut self,
        src: &dyn NodeSource,
        target_parent_level: u8,
        leftmost: bool,
    ) -> Result<()> {
        loop {
            let (n, i) = self.path.last().expect("non-empty").clone();
            if n.level == target_parent_level {
                return Ok(());
            }
            let (_, c) = child(src, &n, i)?;
            let j = if leftmost { 0 } else { c.items.len() - 1 };
            self.path.push((c, j));
        }
    }

    fn next(&self, src: &dyn NodeSource) -> Result<Option<Cursor>> {
        let target = self.path.last().expect("non-empty").0.level;
        let mut c = self.clone();
        while let Some((n, i)) = c.path.pop() {
            if i + 1 < n.items.len() {
                c.path.push((n, i + 1));
                c.descend(src, target, true)?;
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    fn prev(&self, src: &dyn NodeSource) -> Result<Option<Cursor>> {
        let target = self.path.last().expect("non-empty").0.level;
        let mut c = self.clone();
        while let Some((n, i)) = c.path.pop() {
            if i > 0 {
                c.path.push((n, i - 1));
                c.descend(src, target, false)?;
                return Ok(Some(c));
            }
        }
        Ok(None)
    }
}

/// The cursor of the level-`level` node whose range holds `key`.
fn seek(src: &dyn NodeSource, root: &Arc<TreeNode>, level: u8, key: &str) -> Result<Cursor> {
    let mut path = Vec::new();
    let mut n = root.clone();
    loop {
        let i = child_index(&n, key);
        path.push((n.clone(), i));
        if n.level == level + 1 {
            return Ok(Cursor { path });
        }
        n = child(src, &n, i)?.1;
    }
}

fn starts_run(c: &Cursor, level: u8) -> bool {
    c.is_leftmost() || rank(c.first_key()) > level as u32
}

/// The first node of the run holding `c`.
fn run_start(src: &dyn NodeSource, mut c: Cursor, level: u8) -> Result<Cursor> {
    while !starts_run(&c, level) {
        match c.prev(src)? {
            Some(p) => c = p,
            None => break,
        }
    }
    Ok(c)
}

/// The last node of the run holding `c`.
fn run_end(src: &dyn NodeSource, mut c: Cursor, level: u8) -> Result<Cursor> {
    while let Some(n) = c.next(src)? {
        if starts_run(&n, level) {
            break;
        }
        c = n;
    }
    Ok(c)
}

type LevelEdits = BTreeMap<String, Option<ItemValue>>;

struct Group {
    start: Cursor,
    end: Cursor,
    /// The first key after the group (none at the right edge).
    bound: Option<String>,
    edits: Vec<(String, Option<ItemValue>)>,
}

/// Apply `edits` to level `level` (below the root): re-cut the runs they touch and return the
/// edits of the level above.
fn edit_level(
    store: &mut Store<'_>,
    root: &Arc<TreeNode>,
    level: u8,
    edits: LevelEdits,
) -> Result<LevelEdits> {
    let mut groups: Vec<Group> = Vec::new();
    for (key, e) in edits {
        if let Some(g) = groups.last_mut()
            && g.bound.as_deref().is_none_or(|b| key.as_str() < b)
        {
            g.edits.push((key, e));
            continue;
        }
        let at = seek(&*store, root, level, &key)?;
        let mut start = run_start(&*store, at.clone(), level)?;
        if e.is_none()
            && start.first_key() == key
            && let Some(p) = start.prev(&*store)?
        {
            // Deleting the item a run starts with joins the run to the one before.
            start = run_start(&*store, p, level)?;
        }
        let end = run_end(&*store, at, level)?;
        let bound = end.next(&*store)?.map(|n| n.first_key().to_string());
        match groups.last_mut() {
            Some(g) if start.indexes() <= g.end.indexes() => {
                if end.indexes() > g.end.indexes() {
                    g.end = end;
                    g.bound = bound;
                }
                g.edits.push((key, e));
            }
            _ => groups.push(Group {
                start,
                end,
                bound,
                edits: vec![(key, e)],
            }),
        }
    }
    let mut up = LevelEdits::new();
    for g in groups {
        let mut old: Vec<(String, ObjectId)> = Vec::new();
        let mut items = Vec::new();
        let mut c = g.start;
        loop {
            let id = c.child_id();
            old.push((c.first_key().to_string(), id));
            let (_, n) = child(
                &*store,
                &c.path.last().expect("parent").0,
                c.path.last().expect("parent").1,
            )?;
            items.extend(n.items.iter().cloned());
            if c.indexes() == g.end.indexes() {
                break;
            }
            match c.next(&*store)? {
                Some(n) => c = n,
                None => break,
            }
        }
        let items = apply_edits(items, &g.edits);
        let mut new: Vec<(String, ObjectId, u64)> = Vec::new();
        for n in cut(level, items) {
            let key = n[0].key.clone();
            let (id, states) = store.put(TreeNode { level, items: n })?;
            new.push((key, id, states));
        }
        for (k, id) in &old {
            if !new.iter().any(|(nk, nid, _)| nk == k && nid == id) {
                up.insert(k.clone(), None);
            }
        }
        for (k, id, states) in new {
            if !old.iter().any(|(ok, oid)| *ok == k && *oid == id) {
                up.insert(k, Some(ItemValue::Child { id, states }));
            }
        }
    }
    Ok(up)
}

/// Apply edits (path -> new state, or `None` to delete; deleting an absent path does
/// nothing) to the tree `root`; returns the new root. Writes only the nodes that change.
pub fn edit(
    src: &dyn NodeSource,
    sink: &mut dyn NodeSink,
    root: &ObjectId,
    edits: BTreeMap<String, Option<StateEntry>>,
) -> Result<ObjectId> {
    let mut store = Store::new(src, sink);
    let root_node = store.node(root)?;
    let mut level_edits: LevelEdits = edits
        .into_iter()
        .map(|(k, e)| (k, e.map(|e| ItemValue::State(Box::new(e)))))
        .collect();
    for level in 0..root_node.level {
        if level_edits.is_empty() {
            return Ok(*root);
        }
        level_edits = edit_level(&mut store, &root_node, level, level_edits)?;
    }
    if level_edits.is_empty() {
        return Ok(*root);
    }
    let edits: Vec<(String, Option<ItemValue>)> = level_edits.into_iter().collect();
    let items = apply_edits(root_node.items.clone(), &edits);
    store.finish_top(root_node.level, items)
}

/// One state that differs between two trees.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub path: String,
    pub old: Option<StateEntry>,
    pub new: Option<StateEntry>,
}

/// A depth-first stream of a tree's items that can step over whole subtrees.
struct Stream<'a> {
    src: &'a dyn NodeSource,
    stack: Vec<(Arc<TreeNode>, usize)>,
}

impl<'a> Stream<'a> {
    fn new(src: &'a dyn NodeSource, root: &ObjectId) -> Result<Self> {
        Ok(Stream {
            src,
            stack: vec![(src.node(root)?, 0)],
        })
    }

    fn peek(&mut self) -> Option<(&Item, u8)> {
        while let Some((n, p)) = self.stack.last() {
            if *p < n.items.len() {
                break;
            }
            self.stack.pop();
            if let Some(t) = self.stack.last_mut() {
                t.1 += 1;
            }
        }
        self.stack.last().map(|(n, p)| (&n.items[*p], n.level))
    }

    fn advance(&mut self) {
        if let Some(t) = self.stack.last_mut() {
            t.1 += 1;
        }
    }

    fn descend(&mut self) -> Result<()> {
        let (n, p) = self.stack.last().expect("peeked").clone();
        let (_, c) = child(self.src, &n, p)?;
        self.stack.push((c, 0));
        Ok(())
    }
}

enum Peeked {
    Child(String, ObjectId, u8),
    State(String, StateEntry),
}

fn peeked(s: &mut Stream<'_>) -> Option<Peeked> {
    s.peek().map(|(it, level)| match &it.value {
        ItemValue::Child { id, .. } => Peeked::Child(it.key.clone(), *id, level),
        ItemValue::State(e) => Peeked::State(it.key.clone(), (**e).clone()),
    })
}

/// Every state that differs between trees `a` and `b`, in path order. Subtrees with equal
/// ids are skipped without reading them.
pub fn diff(src: &dyn NodeSource, a: &ObjectId, b: &ObjectId) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    if a == b {
        return Ok(out);
    }
    let (mut sa, mut sb) = (Stream::new(src, a)?, Stream::new(src, b)?);
    loop {
        match (peeked(&mut sa), peeked(&mut sb)) {
            (None, None) => break,
            (Some(Peeked::Child(_, x, _)), Some(Peeked::Child(_, y, _))) if x == y => {
                sa.advance();
                sb.advance();
            }
            (Some(Peeked::Child(ka, _, la)), Some(Peeked::Child(kb, _, lb))) => match ka.cmp(&kb) {
                std::cmp::Ordering::Less => sa.descend()?,
                std::cmp::Ordering::Greater => sb.descend()?,
                std::cmp::Ordering::Equal => {
                    if la >= lb {
                        sa.descend()?;
                    }
                    if lb >= la {
                        sb.descend()?;
                    }
                }
            },
            (Some(Peeked::Child(ka, _, _)), Some(Peeked::State(kb, eb))) => {
                if kb < ka {
                    out.push(Change {
                        path: kb,
                        old: None,
                        new: Some(eb),
                    });
                    sb.advance();
                } else {
                    sa.descend()?;
                }
            }
            (Some(Peeked::State(ka, ea)), Some(Peeked::Child(kb, _, _))) => {
                if ka < kb {
                    out.push(Change {
                        path: ka,
                        old: Some(ea),
                        new: None,
                    });
                    sa.advance();
                } else {
                    sb.descend()?;
                }
            }
            (Some(Peeked::State(ka, ea)), Some(Peeked::State(kb, eb))) => match ka.cmp(&kb) {
                std::cmp::Ordering::Less => {
                    out.push(Change {
                        path: ka,
                        old: Some(ea),
                        new: None,
                    });
                    sa.advance();
                }
                std::cmp::Ordering::Greater => {
                    out.push(Change {
                        path: kb,
                        old: None,
                        new: Some(eb),
                    });
                    sb.advance();
                }
                std::cmp::Ordering::Equal => {
                    if ea != eb {
                        out.push(Change {
                            path: ka,
                            old: Some(ea),
                            new: Some(eb),
                        });
                    }
                    sa.advance();
                    sb.advance();
                }
            },
            (Some(Peeked::Child(..)), None) => sa.descend()?,
            (None, Some(Peeked::Child(..))) => sb.descend()?,
            (Some(Peeked::State(ka, ea)), None) => {
                out.push(Change {
                    path: ka,
                    old: Some(ea),
                    new: None,
                });
                sa.advance();
            }
            (None, Some(Peeked::State(kb, eb))) => {
                out.push(Change {
                    path: kb,
                    old: None,
                    new: Some(eb),
                });
                sb.advance();
            }
        }
    }
    Ok(out)
}

/// Visit every node reachable from `root` whose id is not in `seen` yet (adding it), parents
/// before children. Shared subtrees are visited once however many commits hold them.
pub fn walk_nodes(
    src: &dyn NodeSource,
    root: &ObjectId,
    seen: &mut HashSet<ObjectId>,
    f: &mut dyn FnMut(&ObjectId, &TreeNode) -> Result<()>,
) -> Result<()> {
    if !seen.insert(*root) {
        return Ok(());
    }
    let mut stack = vec![(*root, src.node(root)?)];
    while let Some((id, n)) = stack.pop() {
        f(&id, &n)?;
        if n.level > 0 {
            for i in (0..n.items.len()).rev() {
                if let ItemValue::Child { id: cid, .. } = &n.items[i].value
                    && seen.insert(*cid)
                {
                    let (cid, c) = child(src, &n, i)?;
                    stack.push((cid, c));
                }
            }
        }
    }
    Ok(())
}

/// Nodes held in memory: a [`NodeSource`] and [`NodeSink`] for tests and for trees computed
/// but not stored (legacy trees read through the current algorithms).
#[derive(Default, Debug)]
pub struct MemoryNodes {
    pub nodes: HashMap<ObjectId, Arc<TreeNode>>,
    /// Nodes stored through `put_node` (counting those that already existed).
    pub puts: u64,
}

impl NodeSource for MemoryNodes {
    fn node(&self, id: &ObjectId) -> Result<Arc<TreeNode>> {
        self.nodes.get(id).cloned().ok_or(Error::ObjectMissing {
            id: id.to_hex(),
            kind: "tree",
            context: String::new(),
        })
    }
}

impl NodeSink for MemoryNodes {
    fn put_node(&mut self, node: &TreeNode) -> Result<ObjectId> {
        let id = node_id(node);
        self.puts += 1;
        self.nodes
            .entry(id)
            .or_insert_with(|| Arc::new(node.clone()));
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tree::MAX_LEVEL;
    use crate::state::dtype::{DType, Encoding, StateKind};
    use proptest::prelude::*;

    fn entry(tag: u64) -> StateEntry {
        StateEntry {
            kind: StateKind::StateVector,
            dtype: DType::Complex128,
            qubits: 1,
            shape: vec![2],
            encoding: Encoding::Dense,
            manifest: ObjectId(*blake3::hash(&tag.to_le_bytes()).as_bytes()),
            stream_len: 32,
            nnz: 0,
            norm: 1.0,
            tags: Default::default(),
            lossy: None,
        }
    }

    /// Keys of rank 0, in order.
    fn flat_keys() -> Vec<String> {
        (0..100_000u64)
            .map(|i| format!("k{i:06}"))
            .filter(|k| rank(k) == 0)
            .take(600)
            .collect()
    }

    fn key(i: u64) -> String {
        format!("d{}/s{:05}", i % 3, i)
    }

    /// Checks every structural invariant, returns the states in order.
    fn check(m: &MemoryNodes, root: &ObjectId) -> Vec<(String, StateEntry)> {
        let mut out = Vec::new();
        let r = m.node(root).unwrap();
        assert!(r.level <= MAX_LEVEL);
        if r.level > 0 {
            assert!(r.items.len() > 1, "a root with one child is not collapsed");
        }
        check_node(m, &r, &mut out);
        for w in out.windows(2) {
            assert!(w[0].0 < w[1].0);
        }
        out
    }

    fn check_node(m: &MemoryNodes, n: &TreeNode, out: &mut Vec<(String, StateEntry)>) {
        assert!(n.items.len() <= MAX_ITEMS);
        for (i, it) in n.items.iter().enumerate() {
            match &it.value {
                ItemValue::State(e) => out.push((it.key.clone(), (**e).clone())),
                ItemValue::Child { id, states } => {
                    let c = m.node(id).unwrap();
                    assert_eq!(c.level + 1, n.level);
                    assert_eq!(c.first_key(), Some(it.key.as_str()));
                    assert_eq!(c.states(), *states);
                    // Inner boundaries are canonical: a child (but the first) starts a run
                    // or is cut at MAX_ITEMS.
                    if i > 0 && rank(&it.key) <= c.level as u32 {
                        assert!(n.items.len() > 1);
                    }
                    check_node(m, &c, out);
                }
            }
        }
    }

    /// Edit the tree `root` held in `m`, keeping old and new nodes in `m`.
    fn apply(
        m: &mut MemoryNodes,
        root: &ObjectId,
        edits: BTreeMap<String, Option<StateEntry>>,
    ) -> ObjectId {
        let src = std::mem::take(m);
        let mut sink = MemoryNodes {
            nodes: src.nodes.clone(),
            puts: 0,
        };
        let r = edit(&src, &mut sink, root, edits).unwrap();
        *m = sink;
        r
    }

    fn built(states: &BTreeMap<String, StateEntry>) -> (MemoryNodes, ObjectId) {
        let mut m = MemoryNodes::default();
        let src = MemoryNodes::default();
        let root = build(&src, &mut m, states.clone().into_iter().collect()).unwrap();
        (m, root)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any sequence of edit batches gives the same tree (same root id) as building the
        /// final contents from scratch, and reads back like a BTreeMap.
        #[test]
        fn edits_match_a_model_and_are_canonical(
            initial in proptest::collection::btree_set(0u64..3000, 0..600),
            batches in proptest::collection::vec(proptest::collection::vec((0u64..3000, any::<bool>(), 0u64..4), 1..40), 1..6),
        ) {
            let mut model: BTreeMap<String, StateEntry> = initial.iter().map(|&i| (key(i), entry(i))).collect();
            let (mut m, mut root) = built(&model);
            for batch in batches {
                let mut edits = BTreeMap::new();
                for (i, del, v) in batch {
                    if del {
                        edits.insert(key(i), None);
                    } else {
                        edits.insert(key(i), Some(entry(i * 10 + v)));
                    }
                }
                for (k, e) in &edits {
                    match e {
                        Some(e) => { model.insert(k.clone(), e.clone()); }
                        None => { model.remove(k); }
                    }
                }
                root = apply(&mut m, &root, edits);
                let got = check(&m, &root);
                prop_assert_eq!(got.len(), model.len());
                prop_assert!(got.iter().zip(model.iter()).all(|(a, b)| a.0 == *b.0 && a.1 == *b.1));
                let (_, canonical) = built(&model);
                prop_assert_eq!(root, canonical, "edited tree differs from the built one");
            }
            for i in (0..3000).step_by(37) {
                prop_assert_eq!(get(&m, &root, &key(i)).unwrap(), model.get(&key(i)).cloned());
            }
        }

        /// The same with keys that never start a node (rank 0): one long run, cut every
        /// MAX_ITEMS items, re-cut by every edit.
        #[test]
        fn edits_of_long_runs_stay_canonical(
            initial in proptest::collection::btree_set(0usize..600, 0..400),
            batches in proptest::collection::vec(proptest::collection::vec((0usize..600, any::<bool>()), 1..20), 1..5),
        ) {
            let pool = flat_keys();
            let mut model: BTreeMap<String, StateEntry> = initial.iter().map(|&i| (pool[i].clone(), entry(i as u64))).collect();
            let (mut m, mut root) = built(&model);
            for batch in batches {
                let mut edits = BTreeMap::new();
                for (i, del) in batch {
                    let e = (!del).then(|| entry(i as u64 + 7));
                    edits.insert(pool[i].clone(), e);
                }
                for (k, e) in &edits {
                    match e {
                        Some(e) => { model.insert(k.clone(), e.clone()); }
                        None => { model.remove(k); }
                    }
                }
                root = apply(&mut m, &root, edits);
                prop_assert_eq!(check(&m, &root).len(), model.len());
                prop_assert_eq!(root, built(&model).1);
            }
        }

        #[test]
        fn diff_and_scan_match_the_model(
            a in proptest::collection::btree_map(0u64..2000, 0u64..3, 0..400),
            b in proptest::collection::btree_map(0u64..2000, 0u64..3, 0..400),
            lo in 0u64..2000, len in 0u64..500,
        ) {
            let ma: BTreeMap<String, StateEntry> = a.iter().map(|(&i, &v)| (key(i), entry(v))).collect();
            let mb: BTreeMap<String, StateEntry> = b.iter().map(|(&i, &v)| (key(i), entry(v))).collect();
            let (m1, ra) = built(&ma);
            let (m2, rb) = built(&mb);
            let mut m = m1;
            m.nodes.extend(m2.nodes);
            let got = diff(&m, &ra, &rb).unwrap();
            let mut want = Vec::new();
            let keys: std::collections::BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
            for k in keys {
                let (x, y) = (ma.get(k), mb.get(k));
                if x != y {
                    want.push(Change { path: k.clone(), old: x.cloned(), new: y.cloned() });
                }
            }
            prop_assert_eq!(got, want);
            let (lo, hi) = (key(lo), key(lo + len));
            let mut seen = Vec::new();
            scan(&m, &ra, &lo, Some(&hi), &mut |k, _| { seen.push(k.to_string()); true }).unwrap();
            let want: Vec<String> = ma.keys().filter(|k| **k >= lo && **k < hi).cloned().collect();
            prop_assert_eq!(seen, want);
        }
    }

    #[test]
    fn one_edit_in_a_large_tree_writes_about_one_node_per_level() {
        let states: BTreeMap<String, StateEntry> = (0..100_000u64)
            .map(|i| (format!("traj/t{i:07}"), entry(i)))
            .collect();
        let (m, root) = built(&states);
        let depth = m.node(&root).unwrap().level as u64 + 1;
        assert!((4..=6).contains(&depth), "depth {depth}");
        let mut worst = 0;
        for i in (0..100_000u64).step_by(9973) {
            let mut sink = MemoryNodes::default();
            let mut edits = BTreeMap::new();
            edits.insert(format!("traj/t{i:07}x"), Some(entry(7)));
            let r = edit(&m, &mut sink, &root, edits).unwrap();
            assert_ne!(r, root);
            worst = worst.max(sink.puts);
        }
        assert!(
            worst <= 2 * depth,
            "{worst} nodes written for one insert, depth {depth}"
        );
    }

    #[test]
    fn deleting_everything_gives_the_empty_tree() {
        let states: BTreeMap<String, StateEntry> =
            (0..500u64).map(|i| (key(i), entry(i))).collect();
        let (mut m, root) = built(&states);
        let edits = states.keys().map(|k| (k.clone(), None)).collect();
        assert_eq!(apply(&mut m, &root, edits), node_id(&empty()));
    }

    #[test]
    fn runs_without_boundaries_are_cut_at_max_items() {
        // Keys of rank 0 only: one long run.
        let keys: Vec<String> = (0..100_000u64)
            .map(|i| format!("k{i:06}"))
            .filter(|k| rank(k) == 0)
            .take(500)
            .collect();
        let states: BTreeMap<String, StateEntry> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), entry(i as u64)))
            .collect();
        let (m, root) = built(&states);
        assert_eq!(check(&m, &root).len(), 500);
    }
}
