// engine.hpp — compiled DTL: nodes, evaluation context, function registry (internal).
#pragma once

#include "sluice/dtl/dtl.hpp"
#include "value.hpp"

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace sluice::dtl {

struct Node;
struct Ctx;
struct RunState;

// Evaluates to a value. The result is either a pointer into an existing value (source, target,
// literal, lookup cache) or `&tmp` after filling it; never nullptr. Allocations use *ctx.a.
using EvalFn = const Json* (*)(const Node&, Ctx&, Json& tmp);
enum class Flow { Next, Filter, Discard };
using ExecFn = Flow (*)(const Node&, Ctx&);

enum class Var { None, S, T, U, B, P, R, Alias };

struct Path {
    Var var = Var::None;
    int up = 0;           // _P depth (1 = parent)
    bool target = false;  // _P/_R: _T rather than _S
    int alias = -1;       // Var::Alias index in its hops spec
    int scope = -1;       // Var::Alias: hops scope id
    std::vector<std::string> keys;
    std::string text;  // the dotted property path (for lookups)
};

struct Node {
    EvalFn eval = nullptr;
    ExecFn exec = nullptr;
    const char* name = "";
    std::vector<Node> args;
    const Json* lit = nullptr;  // literal value (owned by the program)
    std::shared_ptr<Path> path;
    int rule = -1;               // apply / apply-hops
    std::shared_ptr<void> data;  // function-specific compiled data
    std::vector<std::vector<Node>> branches;  // if / case / case-eq transforms
    template <class T>
    T& get() const { return *static_cast<T*>(data.get()); }
};

extern const Json kNull;
extern const Json kEmptyList;

struct Frame {
    const Json* S;
    Json* T;
    const Frame* parent;
};

struct Ctx {
    const Frame* frame = nullptr;
    const Frame* root = nullptr;
    const Json* U = nullptr;  // `_`
    const Json* B = nullptr;
    const Json* const* aliases = nullptr;
    Alloc* a = nullptr;
    RunState* rs = nullptr;
    const Program* prog = nullptr;
};

inline const Json* ev(const Node& n, Ctx& c, Json& tmp) { return n.eval(n, c, tmp); }

// Runs a list of transform steps on the current frame.
Flow exec_steps(const std::vector<Node>& steps, Ctx& c);
// Applies a rule to one source entity; returns false when the rule filtered/discarded it.
bool apply_rule(int rule, const Json& source, Ctx& c, Json& target_out);

struct Rule {
    std::string name;
    std::vector<Node> steps;
};

// ---- hops: compiled specs and the join graph (dependency tracking) ---------------------------
struct HopJoin {
    int alias = -1;           // the alias this join binds
    std::string prop;         // property looked up in the alias's dataset
    Node bound;               // the other side (refers to _S and/or bound aliases only)
};
struct HopsSpec {
    int scope = -1;
    std::vector<std::string> datasets, aliases;
    std::vector<HopJoin> joins;       // one per alias, in binding order
    std::vector<Node> filters;        // the rest of `where`
    std::vector<Node> subsets;        // per alias (eval null = none)
    std::vector<int> return_aliases;  // empty: template
    Node return_template;
    bool has_template = false;
    bool recurse = false;
    int max_depth = 10;  // -1 unbounded
    bool exclude_root = false;
    bool track = true;
};

// Graph for dependency tracking: node 0 is the main source; every tracked alias is a node.
struct DepEdge {
    int from = 0;            // node the bound side reads
    std::string from_path;   // dotted path in `from` entities ("" = not invertible)
    int to = 0;              // node bound by the join
    std::string to_prop;     // property of `to` entities
};
struct DepGraph {
    std::vector<std::string> node_dataset{""};  // node 0: main source
    std::vector<DepEdge> edges;
};

class Program {
public:
    rapidjson::Document literals;  // allocator of every literal
    std::deque<Json> store;        // the literals (stable addresses)
    std::vector<Rule> rules;
    std::unordered_map<std::string, int> rule_index;
    int default_rule = -1;
    Options options;
    bool uses_lookups = false;
    std::vector<std::pair<std::string, std::string>> joins;  // (dataset, property)
    std::vector<std::string> tracked;                         // datasets, first-use order
    DepGraph graph;
    int scopes = 0;
    Program() { literals.SetArray(); }
};

class Expression {
public:
    std::shared_ptr<Program> program;  // holds literals (and no rules)
    Node root;
};

// ---- compiler --------------------------------------------------------------------------------
class Compiler;
using CompileHook = void (*)(Compiler&, Node&, const Json& call);

struct FnDef {
    int min_args = 0, max_args = 0;  // -1 max = unbounded
    EvalFn eval = nullptr;
    CompileHook hook = nullptr;         // custom argument compilation (replaces the default)
    const char* unsupported = nullptr;  // set: compile error with this reason
};
struct TxDef {
    int min_args = 0, max_args = 0;
    ExecFn exec = nullptr;
    CompileHook hook = nullptr;
};
using FnTable = std::unordered_map<std::string, FnDef>;
using TxTable = std::unordered_map<std::string, TxDef>;
const FnTable& expression_functions();
const TxTable& transform_functions();

// Registration, one per category file.
void register_core(FnTable&);      // logic, comparisons, conditionals, nulls, literal, types
void register_lists(FnTable&);     // lists, sets, ordering, aggregation
void register_strings(FnTable&);   // strings, uris, uuids, bytes, json
void register_numbers(FnTable&);   // math, numbers, hash128
void register_datetime(FnTable&);  // date and time
void register_dicts(FnTable&);     // dicts, namespaces, NIs, misc, crypto, phone numbers
void register_hops(FnTable&);      // hops, apply, apply-hops, lookup-entity
void register_transforms(TxTable&);

struct AliasScope {
    int id = -1;
    std::vector<std::string> names;
    int dep_base = -1;  // graph node of alias 0 (-1: not tracked)
};

class Compiler {
public:
    explicit Compiler(Program& p) : prog(p) {}
    Program& prog;
    std::string base;                 // JSON pointer prefix ("/rules/default")
    std::vector<std::string> loc;     // pointer segments below base
    std::vector<AliasScope> alias_scopes;
    struct RuleRef {
        std::string name, pointer;
        std::shared_ptr<int> index;  // filled once every rule is known
    };
    std::vector<RuleRef> rule_refs;
    bool main_context = false;  // compiling the default rule outside apply: _S is the main entity
    int s_node = 0;             // dependency-graph node `_S` stands for (-1: unknown)

    std::string pointer() const;
    [[noreturn]] void fail(const std::string& message) const { throw CompileError(pointer(), message); }
    Node expr(const Json& j);
    Node step(const Json& j);
    std::vector<Node> steps(const Json& j);  // a transform or a list of transforms
    // Compiles argument i of `call` (pointer segment i).
    Node arg(const Json& call, size_t i) {
        loc.push_back(std::to_string(i));
        Node n = expr(call[static_cast<rapidjson::SizeType>(i)]);
        loc.pop_back();
        return n;
    }
    std::vector<Node> arg_steps(const Json& call, size_t i) {
        loc.push_back(std::to_string(i));
        std::vector<Node> s = steps(call[static_cast<rapidjson::SizeType>(i)]);
        loc.pop_back();
        return s;
    }
    const Json* keep(const Json& v);  // copy into the program's literal store
    Node literal(const Json& v);
    bool parse_path(std::string_view s, Path& out, std::string* error);  // false: not a path
    void compile_args(Node& n, const Json& call);
};

bool is_literal(const Node& n);
bool is_path(const Node& n);
// Collects the variables a node reads: bit 0 = _S, others via `aliases` (scope, index).
void node_refs(const Node& n, bool& reads_s, std::set<std::pair<int, int>>& aliases, bool& other);

// ---- run state (per Runner) ------------------------------------------------------------------
struct LookupTable {
    std::string dataset, property;
    std::vector<std::string> path;  // property split at dots
    struct Entry {
        std::vector<const Json*> entities;
        bool fetched = false;
        bool pending = false;
    };
    std::unordered_map<std::string, Entry> by_key;  // every key seen in this batch
    std::vector<Entry*> pending;                     // keys to fetch (nodes are stable)
    std::vector<const Json*> pending_values;
};
struct RunState {
    LookupProvider* provider = nullptr;
    const Json* B = nullptr;
    std::map<std::pair<std::string, std::string>, LookupTable> cache;
    std::vector<std::unique_ptr<rapidjson::Document>> docs;
    bool missing = false;              // this entity needed keys not fetched yet
    int depth = 0;                     // nesting of apply / apply-hops
    std::vector<Json>* created = nullptr;  // entities made by `create` for the current entity
    RunStats stats;
    rapidjson::Document scratch;       // owns key values until fetched
    // The cached entities of `dataset` whose `property` overlaps `key`; nullptr (and `missing`
    // set) when the key has not been fetched yet in this batch.
    const std::vector<const Json*>* find(const std::string& dataset, const std::string& property,
                                         const Json& key);
    // Fetches every pending key: one provider call per (dataset, property). False: none pending.
    bool fetch_pending();
    void clear();
};

// ---- helpers for function implementations ---------------------------------------------------
// Maps `f` (bool f(const Json& in, Json& out)) over a value or each element of a list; a scalar
// for which f fails gives null.
template <class F>
const Json* map_values(const Json* v, Ctx& c, Json& tmp, F&& f) {
    if (v->IsArray()) {
        Json out(rapidjson::kArrayType);
        out.Reserve(v->Size(), *c.a);
        for (const Json& e : v->GetArray()) {
            Json o;
            if (f(e, o)) out.PushBack(o, *c.a);
        }
        tmp = std::move(out);
        return &tmp;
    }
    Json o;
    if (f(*v, o)) {
        tmp = std::move(o);
        return &tmp;
    }
    return &kNull;
}
// Calls `f(const Json&)` for each element (a list) or the value itself (non-null scalar).
template <class F>
void each(const Json* v, F&& f) {
    if (v->IsArray()) {
        for (const Json& e : v->GetArray()) f(e);
    } else if (!v->IsNull()) {
        f(*v);
    }
}
// Evaluates `fn` with `_` bound to `value`.
inline const Json* eval_with(const Node& fn, Ctx& c, const Json& value, Json& tmp) {
    const Json* saved = c.U;
    c.U = &value;
    const Json* r = ev(fn, c, tmp);
    c.U = saved;
    return r;
}
inline const Json* first_value(const Json* v) {
    if (v->IsArray()) return v->Empty() ? &kNull : &(*v)[0];
    return v;
}
inline const Json* ret_bool(Json& tmp, bool b) {
    tmp.SetBool(b);
    return &tmp;
}
// A copy the caller may store (strings referenced unless inline, containers rebuilt).
inline void copy_into(Json& out, const Json& v, Ctx& c) { shallow_copy(out, v, *c.a); }
// Moves or copies `r` into tmp so it survives further evaluation.
inline const Json* own(const Json* r, Json& tmp, Ctx& c) {
    if (r == &tmp) return r;
    Json t;
    shallow_copy(t, *r, *c.a);
    tmp = std::move(t);
    return &tmp;
}
// Appends a copy of `v` to list `out`.
inline void push_copy(Json& out, const Json& v, Ctx& c) {
    Json t;
    shallow_copy(t, v, *c.a);
    out.PushBack(t, *c.a);
}
bool wildcard_match(std::string_view pattern, std::string_view text);
const Json* resolve_path(const Path& p, Ctx& c, Json& tmp);
// Values at a dotted path of an entity, flattened (lists map), nulls dropped.
void path_values(const Json& entity, const std::vector<std::string>& keys, std::vector<const Json*>& out);
void set_member(Json& obj, std::string_view key, Json& value, Alloc& a);
std::string key_text(const Json& v);  // canonical text of a scalar/composite for hashing joins
std::vector<std::string> split_path(const std::string& dotted);

}  // namespace sluice::dtl
