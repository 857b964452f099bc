// transforms.cpp — the transform functions (reference §4.2): they act on the target `_T`.
#include "fn_common.hpp"

#include <chrono>
#include <thread>

namespace sluice::dtl {

Flow exec_steps(const std::vector<Node>& steps, Ctx& c) {
    for (const Node& s : steps) {
        Flow f = s.exec(s, c);
        if (f != Flow::Next) return f;
    }
    return Flow::Next;
}

bool apply_rule(int rule, const Json& source, Ctx& c, Json& target_out) {
    target_out.SetObject();
    Frame f{&source, &target_out, c.frame};
    Ctx cc = c;
    cc.frame = &f;
    struct Depth {
        RunState* rs;
        explicit Depth(RunState* r) : rs(r) {
            if (rs && ++rs->depth > 200) {
                rs->depth = 0;
                throw RuntimeError("apply: rules nested more than 200 deep (a rule applying itself?)");
            }
        }
        ~Depth() {
            if (rs && rs->depth > 0) --rs->depth;
        }
    } depth(c.rs);
    return exec_steps(c.prog->rules[static_cast<size_t>(rule)].steps, cc) == Flow::Next;
}

// A value ready to be stored in the target: `r` moved when it is the temporary, else copied.
static void take(Json& out, const Json* r, Json& tmp, Ctx& c) {
    if (r == &tmp) out = std::move(tmp);
    else shallow_copy(out, *r, *c.a);
}

// Sets target[key]; literal keys (program-owned, stable) are referenced, not copied.
static void set_target(Ctx& c, const Node& key_node, const Json& key, Json& value) {
    Json& target = *c.frame->T;
    auto it = target.FindMember(key);
    if (it != target.MemberEnd()) {
        it->value = value;
        return;
    }
    Json k;
    if (is_literal(key_node)) k.SetString(rapidjson::StringRef(key.GetString(), key.GetStringLength()));
    else set_string(k, sv(key), *c.a);
    target.AddMember(k, value, *c.a);
}

// ---- add / add-if / default ------------------------------------------------------------------
static Flow t_add(const Node& n, Ctx& c) {
    Json tk;
    const Json* key = ev(n.args[0], c, tk);
    if (!key->IsString()) return Flow::Next;
    Json tv, value;
    take(value, ev(n.args[1], c, tv), tv, c);
    set_target(c, n.args[0], *key, value);
    return Flow::Next;
}
static Flow t_add_if(const Node& n, Ctx& c) {
    Json tk;
    const Json* key = ev(n.args[0], c, tk);
    if (!key->IsString()) return Flow::Next;
    Json tv;
    const Json* v = ev(n.args.back(), c, tv);
    bool ok;
    if (n.args.size() == 3) {
        Json tc;
        ok = truthy(*eval_with(n.args[1], c, *v, tc));
    } else {
        ok = !v->IsNull();
    }
    if (!ok) return Flow::Next;
    Json value;
    take(value, v, tv, c);
    set_target(c, n.args[0], *key, value);
    return Flow::Next;
}
static Flow t_default(const Node& n, Ctx& c) {
    Json tk;
    const Json* key = ev(n.args[0], c, tk);
    if (!key->IsString() || c.frame->T->HasMember(*key)) return Flow::Next;
    Json tv, value;
    take(value, ev(n.args[1], c, tv), tv, c);
    set_target(c, n.args[0], *key, value);
    return Flow::Next;
}

// ---- copy / rename / remove ------------------------------------------------------------------
struct Patterns {
    std::vector<std::string> include, exclude;
    bool all = false;      // include is exactly "*"
    bool dynamic = false;  // patterns are expressions evaluated per entity
};
static void read_patterns(const Json& v, std::vector<std::string>& out) {
    each(&v, [&](const Json& e) {
        if (e.IsString()) out.emplace_back(sv(e));
    });
}
static void hook_copy(Compiler& c, Node& n, const Json& call) {
    c.compile_args(n, call);
    auto p = std::make_shared<Patterns>();
    p->dynamic = !is_literal(n.args[0]) || (n.args.size() > 1 && !is_literal(n.args[1]));
    if (!p->dynamic) {
        read_patterns(*n.args[0].lit, p->include);
        if (n.args.size() > 1) read_patterns(*n.args[1].lit, p->exclude);
        p->all = p->include.size() == 1 && p->include[0] == "*" && p->exclude.empty();
    }
    n.data = p;
}
static bool system_key(std::string_view k) {
    if (k.size() < 3 || k[0] != '_') return false;
    return k == "_updated" || k == "_previous" || k == "_ts" || k == "_hash";
}
static bool matches_any(const std::vector<std::string>& patterns, std::string_view key, bool& exact) {
    for (const std::string& p : patterns) {
        if (p == key) {
            exact = true;
            return true;
        }
        if (wildcard_match(p, key)) return true;
    }
    return false;
}
static Flow t_copy(const Node& n, Ctx& c) {
    const Json& src = *c.frame->S;
    if (!src.IsObject()) return Flow::Next;
    const Patterns& fixed = n.get<Patterns>();
    Patterns dyn;
    const Patterns* p = &fixed;
    if (fixed.dynamic) {
        Json t1, t2;
        read_patterns(*ev(n.args[0], c, t1), dyn.include);
        if (n.args.size() > 1) read_patterns(*ev(n.args[1], c, t2), dyn.exclude);
        p = &dyn;
    }
    Json& target = *c.frame->T;
    const bool fresh = target.ObjectEmpty();
    for (auto it = src.MemberBegin(); it != src.MemberEnd(); ++it) {
        std::string_view key = sv(it->name);
        bool exact = false;
        if (!p->all) {
            if (!matches_any(p->include, key, exact)) continue;
            bool ex = false;
            if (matches_any(p->exclude, key, ex)) continue;
        }
        if (!exact && system_key(key)) continue;
        Json value;
        shallow_copy(value, it->value, *c.a);
        if (fresh) {
            Json k;
            shallow_copy(k, it->name, *c.a);
            target.AddMember(k, value, *c.a);
        } else {
            set_member(target, key, value, *c.a);
        }
    }
    return Flow::Next;
}
static Flow t_rename(const Node& n, Ctx& c) {
    const Json& src = *c.frame->S;
    Json t1, t2;
    const Json* from = ev(n.args[0], c, t1);
    const Json* to = ev(n.args[1], c, t2);
    if (!src.IsObject() || !from->IsString() || !to->IsString()) return Flow::Next;
    auto it = src.FindMember(*from);
    if (it == src.MemberEnd()) return Flow::Next;
    Json value;
    shallow_copy(value, it->value, *c.a);
    set_target(c, n.args[1], *to, value);
    return Flow::Next;
}
static Flow t_remove(const Node& n, Ctx& c) {
    Json t;
    std::vector<std::string> patterns;
    read_patterns(*ev(n.args[0], c, t), patterns);
    Json& target = *c.frame->T;
    for (auto it = target.MemberBegin(); it != target.MemberEnd();) {
        bool exact = false;
        if (matches_any(patterns, sv(it->name), exact)) it = target.EraseMember(it);
        else ++it;
    }
    return Flow::Next;
}

// ---- make-ni NS FROM [TO] --------------------------------------------------------------------
static bool ni_of(const Json& v, std::string_view ns, Json& out, Ctx& c) {
    std::string id;
    if (is_plain_string(v)) id = std::string(sv(v));
    else if (v.IsInt64()) id = std::to_string(v.GetInt64());
    else if (type_of(v) == Type::BigInt) id = to_text(v);
    else return false;
    set_text(out, make_ni_text(ns, id), c);
    return true;
}
static Flow t_make_ni(const Node& n, Ctx& c) {
    Json t1, t2, t3;
    const Json* ns = ev(n.args[0], c, t1);
    const Json* from = ev(n.args[1], c, t2);
    if (!ns->IsString() || !from->IsString() || !c.frame->S->IsObject()) return Flow::Next;
    std::string to = n.args.size() > 2 ? std::string(sv(*ev(n.args[2], c, t3))) : std::string(sv(*from)) + "-ni";
    auto it = c.frame->S->FindMember(*from);
    if (it == c.frame->S->MemberEnd()) return Flow::Next;
    Json result;
    if (it->value.IsArray()) {
        result.SetArray();
        for (const Json& e : it->value.GetArray()) {
            Json o;
            if (ni_of(e, sv(*ns), o, c)) result.PushBack(o, *c.a);
        }
        if (result.Empty()) return Flow::Next;
    } else if (!ni_of(it->value, sv(*ns), result, c)) {
        return Flow::Next;
    }
    set_member(*c.frame->T, to, result, *c.a);
    return Flow::Next;
}

// ---- merge / merge-union ---------------------------------------------------------------------
template <bool Union>
static Flow t_merge(const Node& n, Ctx& c) {
    Json t;
    const Json* v = ev(n.args[0], c, t);
    Json& target = *c.frame->T;
    each(v, [&](const Json& d) {
        if (!d.IsObject()) return;
        for (auto it = d.MemberBegin(); it != d.MemberEnd(); ++it) {
            std::string_view key = sv(it->name);
            if (!key.empty() && key[0] == '_') continue;
            auto existing = target.FindMember(it->name);
            if (Union && existing != target.MemberEnd()) {
                if (equals(existing->value, it->value)) continue;
                Json list(rapidjson::kArrayType);
                auto add_distinct = [&](const Json& e) {
                    for (const Json& have : list.GetArray())
                        if (equals(have, e)) return;
                    push_copy(list, e, c);
                };
                if (existing->value.IsArray()) for (const Json& e : existing->value.GetArray()) add_distinct(e);
                else add_distinct(existing->value);
                if (it->value.IsArray()) for (const Json& e : it->value.GetArray()) add_distinct(e);
                else add_distinct(it->value);
                existing->value = list;
                continue;
            }
            Json value;
            shallow_copy(value, it->value, *c.a);
            set_member(target, key, value, *c.a);
        }
    });
    return Flow::Next;
}

// ---- conditionals ----------------------------------------------------------------------------
static void hook_if(Compiler& c, Node& n, const Json& call) {
    n.args.push_back(c.arg(call, 1));
    n.branches.push_back(c.arg_steps(call, 2));
    if (call.Size() > 3) n.branches.push_back(c.arg_steps(call, 3));
}
static Flow t_if(const Node& n, Ctx& c) {
    Json t;
    if (truthy(*ev(n.args[0], c, t))) return exec_steps(n.branches[0], c);
    if (n.branches.size() > 1) return exec_steps(n.branches[1], c);
    return Flow::Next;
}
// case C1 T1 … [ELSE]: args = conditions, branches = transforms (one more for ELSE).
static void hook_case(Compiler& c, Node& n, const Json& call) {
    size_t i = 1;
    for (; i + 1 < call.Size(); i += 2) {
        n.args.push_back(c.arg(call, i));
        n.branches.push_back(c.arg_steps(call, i + 1));
    }
    if (i < call.Size()) n.branches.push_back(c.arg_steps(call, i));
}
static Flow t_case(const Node& n, Ctx& c) {
    for (size_t i = 0; i < n.args.size(); ++i) {
        Json t;
        if (truthy(*ev(n.args[i], c, t))) return exec_steps(n.branches[i], c);
    }
    if (n.branches.size() > n.args.size()) return exec_steps(n.branches.back(), c);
    return Flow::Next;
}
// case-eq VALUE V1 T1 … [ELSE]: args[0] = VALUE, args[i] = Vi, branches[i-1] = Ti.
static void hook_case_eq(Compiler& c, Node& n, const Json& call) {
    n.args.push_back(c.arg(call, 1));
    size_t i = 2;
    for (; i + 1 < call.Size(); i += 2) {
        n.args.push_back(c.arg(call, i));
        n.branches.push_back(c.arg_steps(call, i + 1));
    }
    if (i < call.Size()) n.branches.push_back(c.arg_steps(call, i));
}
static Flow t_case_eq(const Node& n, Ctx& c) {
    Json tv;
    const Json* v = own(ev(n.args[0], c, tv), tv, c);
    for (size_t i = 1; i < n.args.size(); ++i) {
        Json t;
        if (list_equals(*v, *ev(n.args[i], c, t))) return exec_steps(n.branches[i - 1], c);
    }
    if (n.branches.size() + 1 > n.args.size()) return exec_steps(n.branches.back(), c);
    return Flow::Next;
}

// ---- filter / discard ------------------------------------------------------------------------
template <Flow Stop>
static Flow t_filter(const Node& n, Ctx& c) {
    if (n.args.empty()) return Stop;
    Json t;
    return truthy(*ev(n.args[0], c, t)) ? Flow::Next : Stop;
}

// ---- create / create-child -------------------------------------------------------------------
static Flow t_create(const Node& n, Ctx& c) {
    Json t;
    const Json* v = ev(n.args[0], c, t);
    each(v, [&](const Json& e) {
        if (!e.IsObject() || !c.rs || !c.rs->created) return;
        Json copy;
        shallow_copy(copy, e, *c.a);
        c.rs->created->push_back(std::move(copy));
    });
    return Flow::Next;
}
static Flow t_create_child(const Node& n, Ctx& c) {
    Json t;
    const Json* v = ev(n.args[0], c, t);
    Json& target = *c.frame->T;
    auto it = target.FindMember("$children");
    Json children(rapidjson::kArrayType);
    if (it != target.MemberEnd()) {
        if (it->value.IsArray()) children = it->value;  // moves
        else if (!it->value.IsNull()) children.PushBack(it->value, *c.a);
    }
    each(v, [&](const Json& e) {
        if (!e.IsObject()) return;
        for (const Json& have : children.GetArray())
            if (equals(have, e)) return;
        push_copy(children, e, c);
    });
    if (it != target.MemberEnd()) it->value = children;
    else target.AddMember("$children", children, *c.a);
    return Flow::Next;
}

// ---- control ---------------------------------------------------------------------------------
template <bool Trip>
static Flow t_fail(const Node& n, Ctx& c) {
    Json t;
    std::string msg = to_text(*ev(n.args[0], c, t));
    throw RuntimeError(std::string(Trip ? "trip!: " : "fail!: ") + msg, Trip);
}
static Flow t_sleep(const Node& n, Ctx& c) {
    Json t;
    Num num;
    if (Num::from(*first_value(ev(n.args[0], c, t)), num)) {
        double s = std::min(60.0, std::max(0.0, num.as_double()));
        std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int64_t>(s * 1e6)));
    }
    return Flow::Next;
}
static void hook_comment(Compiler&, Node&, const Json&) {}
static Flow t_comment(const Node&, Ctx&) { return Flow::Next; }

void register_transforms(TxTable& t) {
    t["comment"] = {0, -1, &t_comment, &hook_comment};
    t["add"] = {2, 2, &t_add};
    t["add-if"] = {2, 3, &t_add_if};
    t["default"] = {2, 2, &t_default};
    t["copy"] = {1, 2, &t_copy, &hook_copy};
    t["rename"] = {2, 2, &t_rename};
    t["remove"] = {1, 1, &t_remove};
    t["make-ni"] = {2, 3, &t_make_ni};
    t["merge"] = {1, 1, &t_merge<false>};
    t["merge-union"] = {1, 1, &t_merge<true>};
    t["if"] = {2, 3, &t_if, &hook_if};
    t["case"] = {2, -1, &t_case, &hook_case};
    t["case-eq"] = {3, -1, &t_case_eq, &hook_case_eq};
    t["filter"] = {0, 1, &t_filter<Flow::Filter>};
    t["discard"] = {0, 1, &t_filter<Flow::Discard>};
    t["create"] = {1, 1, &t_create};
    t["create-child"] = {1, 1, &t_create_child};
    t["fail!"] = {1, 1, &t_fail<false>};
    t["trip!"] = {1, 1, &t_fail<true>};
    t["sleep!"] = {1, 1, &t_sleep};
}

}  // namespace sluice::dtl
