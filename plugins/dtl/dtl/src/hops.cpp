// hops.cpp — hops, apply-hops, apply, lookup-entity; dependency tracking (inverse joins).
#include "fn_common.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <unordered_set>

namespace sluice::dtl {

// ---- compiling a hops spec -------------------------------------------------------------------
namespace {

struct HopsChain {
    std::vector<HopsSpec> specs;
};

// Which variables a join side reads: _S (bound from the start), aliases of this scope.
struct SideRefs {
    bool s = false, other = false;
    std::set<int> aliases;
};
SideRefs side_refs(const Node& n, int scope) {
    SideRefs r;
    std::set<std::pair<int, int>> all;
    node_refs(n, r.s, all, r.other);
    for (const auto& [sc, idx] : all) {
        if (sc == scope) r.aliases.insert(idx);
        else r.other = true;
    }
    return r;
}

bool json_bool(const Json& spec, const char* key, bool fallback, Compiler& c) {
    auto it = spec.FindMember(key);
    if (it == spec.MemberEnd() || it->value.IsNull()) return fallback;
    if (!it->value.IsBool()) {
        c.loc.push_back(key);
        c.fail(std::string("\"") + key + "\" must be true or false");
    }
    return it->value.GetBool();
}

HopsSpec compile_spec(Compiler& c, const Json& spec, bool track_context) {
    HopsSpec h;
    if (!spec.IsObject()) c.fail("a hops spec must be an object with \"datasets\" and \"where\"");
    h.scope = c.prog.scopes++;
    // datasets
    auto ds = spec.FindMember("datasets");
    if (ds == spec.MemberEnd()) c.fail("the hops spec has no \"datasets\"");
    c.loc.push_back("datasets");
    std::vector<const Json*> entries;
    if (ds->value.IsString()) entries.push_back(&ds->value);
    else if (ds->value.IsArray()) for (const Json& e : ds->value.GetArray()) entries.push_back(&e);
    if (entries.empty()) c.fail("\"datasets\" must list \"<dataset> <alias>\" strings");
    for (size_t i = 0; i < entries.size(); ++i) {
        c.loc.push_back(std::to_string(i));
        if (!entries[i]->IsString()) c.fail("expected \"<dataset> <alias>\"");
        std::string text(sv(*entries[i]));
        size_t sp = text.find(' ');
        std::string dataset = text.substr(0, sp), alias = sp == std::string::npos ? dataset : text.substr(sp + 1);
        while (!alias.empty() && alias.front() == ' ') alias.erase(alias.begin());
        if (dataset.empty() || alias.empty() || alias.find(' ') != std::string::npos)
            c.fail("expected \"<dataset> <alias>\", got \"" + text + "\"");
        if (alias[0] == '_') c.fail("alias \"" + alias + "\" may not start with '_'");
        if (std::find(h.aliases.begin(), h.aliases.end(), alias) != h.aliases.end())
            c.fail("alias \"" + alias + "\" is used twice");
        h.datasets.push_back(dataset);
        h.aliases.push_back(alias);
        c.loc.pop_back();
    }
    c.loc.pop_back();
    const size_t n = h.aliases.size();
    h.track = json_bool(spec, "track-dependencies", true, c);
    h.recurse = json_bool(spec, "recurse", false, c);
    h.exclude_root = json_bool(spec, "exclude_root", false, c);
    auto md = spec.FindMember("max_depth");
    if (md != spec.MemberEnd()) {
        if (md->value.IsNull()) h.max_depth = -1;
        else if (md->value.IsInt() && md->value.GetInt() >= 0) h.max_depth = md->value.GetInt();
        else {
            c.loc.push_back("max_depth");
            c.fail("\"max_depth\" must be a non-negative integer or null");
        }
    }
    if (h.recurse && n != 1) c.fail("\"recurse\" needs exactly one dataset");

    AliasScope scope;
    scope.id = h.scope;
    scope.names = h.aliases;
    c.alias_scopes.push_back(scope);

    // where: one expression or a list of them (ANDed)
    std::vector<Node> where;
    auto w = spec.FindMember("where");
    if (w == spec.MemberEnd()) c.fail("the hops spec has no \"where\"");
    c.loc.push_back("where");
    const Json& wv = w->value;
    std::vector<std::string> where_ptr;
    if (wv.IsArray() && !wv.Empty() && wv[0].IsString()) {
        where.push_back(c.expr(wv));
        where_ptr.push_back(c.pointer());
    } else if (wv.IsArray()) {
        for (rapidjson::SizeType i = 0; i < wv.Size(); ++i) {
            c.loc.push_back(std::to_string(i));
            where.push_back(c.expr(wv[i]));
            where_ptr.push_back(c.pointer());
            c.loc.pop_back();
        }
    } else {
        c.fail("\"where\" must be an expression or a list of expressions");
    }
    // Joins: eq whose sides read different aliases (or _S and an alias): overlap semantics.
    struct Candidate {
        size_t where_index;
        int side;  // the side that is a plain path on one alias
        int alias;
        SideRefs other;
    };
    std::vector<Candidate> candidates;
    std::vector<bool> is_join(where.size(), false);
    for (size_t i = 0; i < where.size(); ++i) {
        Node& e = where[i];
        if (e.eval != &f_eq || e.args.size() != 2) continue;
        SideRefs a = side_refs(e.args[0], h.scope), b = side_refs(e.args[1], h.scope);
        // _T, _P, _R, _B count as bound (constant during the join), like _S
        bool a_has = !a.aliases.empty() || a.s || a.other, b_has = !b.aliases.empty() || b.s || b.other;
        if (!a_has || !b_has) continue;  // alias vs literal: a plain filter
        bool disjoint = true;
        for (int x : a.aliases)
            if (b.aliases.count(x)) disjoint = false;
        if (!disjoint || (a.aliases.empty() && b.aliases.empty())) continue;
        e.eval = &f_eq_overlap;
        is_join[i] = true;
        for (int side = 0; side < 2; ++side) {
            const Node& s = e.args[static_cast<size_t>(side)];
            const SideRefs& mine = side == 0 ? a : b;
            if (is_path(s) && s.path->var == Var::Alias && s.path->scope == h.scope && !s.path->keys.empty() &&
                mine.aliases.size() == 1 && !mine.s)
                candidates.push_back({i, side, s.path->alias, side == 0 ? b : a});
        }
    }
    // Binding order: from _S, bind one alias at a time through a join on a plain property path.
    std::vector<bool> bound(n, false), used(where.size(), false);
    for (size_t step = 0; step < n; ++step) {
        bool progress = false;
        for (const Candidate& cand : candidates) {
            if (used[cand.where_index] || bound[static_cast<size_t>(cand.alias)]) continue;
            bool ready = true;
            for (int x : cand.other.aliases)
                if (!bound[static_cast<size_t>(x)]) ready = false;
            if (!ready) continue;
            Node& e = where[cand.where_index];
            HopJoin j;
            j.alias = cand.alias;
            j.prop = e.args[static_cast<size_t>(cand.side)].path->text;
            j.bound = e.args[static_cast<size_t>(1 - cand.side)];
            h.joins.push_back(std::move(j));
            used[cand.where_index] = true;
            bound[static_cast<size_t>(cand.alias)] = true;
            progress = true;
            break;
        }
        if (!progress) break;
    }
    for (size_t i = 0; i < n; ++i) {
        if (!bound[i]) {
            c.fail("alias \"" + h.aliases[i] +
                   "\" is not reachable from _S: add an [\"eq\", <bound expression>, \"" + h.aliases[i] +
                   ".<property>\"] join");
        }
    }
    for (size_t i = 0; i < where.size(); ++i)
        if (!used[i]) h.filters.push_back(std::move(where[i]));
    c.loc.pop_back();

    // subsets: {"alias": EXPR with _S = the alias's entity}
    h.subsets.resize(n);
    auto sub = spec.FindMember("subsets");
    if (sub != spec.MemberEnd() && !sub->value.IsNull()) {
        c.loc.push_back("subsets");
        if (!sub->value.IsObject()) c.fail("\"subsets\" must map aliases to expressions");
        c.alias_scopes.pop_back();
        for (auto it = sub->value.MemberBegin(); it != sub->value.MemberEnd(); ++it) {
            std::string alias(sv(it->name));
            auto pos = std::find(h.aliases.begin(), h.aliases.end(), alias);
            c.loc.push_back(alias);
            if (pos == h.aliases.end()) c.fail("unknown alias \"" + alias + "\"");
            h.subsets[static_cast<size_t>(pos - h.aliases.begin())] = c.expr(it->value);
            c.loc.pop_back();
        }
        c.alias_scopes.push_back(scope);
        c.loc.pop_back();
    }

    // return: "a" / "a,b" / a template expression; default the last alias
    auto ret = spec.FindMember("return");
    if (ret == spec.MemberEnd() || ret->value.IsNull()) {
        h.return_aliases.push_back(static_cast<int>(n - 1));
    } else {
        c.loc.push_back("return");
        if (h.recurse) c.fail("\"return\" cannot be combined with \"recurse\"");
        bool plain = false;
        if (ret->value.IsString()) {
            std::string text(sv(ret->value));
            std::vector<int> picked;
            size_t start = 0;
            plain = true;
            while (start <= text.size()) {
                size_t comma = text.find(',', start);
                std::string name = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
                name.erase(0, name.find_first_not_of(' '));
                name.erase(name.find_last_not_of(' ') + 1);
                auto pos = std::find(h.aliases.begin(), h.aliases.end(), name);
                if (pos == h.aliases.end()) {
                    plain = false;
                    break;
                }
                picked.push_back(static_cast<int>(pos - h.aliases.begin()));
                if (comma == std::string::npos) break;
                start = comma + 1;
            }
            if (plain) h.return_aliases = picked;
        }
        if (!plain) {
            h.has_template = true;
            if (ret->value.IsObject()) {
                // a dict template: each value is an expression over the aliases
                auto tpl = std::make_shared<std::vector<std::pair<std::string, Node>>>();
                for (auto it = ret->value.MemberBegin(); it != ret->value.MemberEnd(); ++it) {
                    c.loc.push_back(std::string(sv(it->name)));
                    tpl->push_back({std::string(sv(it->name)), c.expr(it->value)});
                    c.loc.pop_back();
                }
                Node t;
                t.name = "return-template";
                t.data = tpl;
                for (auto& kv : *tpl) t.args.push_back(kv.second);
                t.eval = [](const Node& node, Ctx& ctx, Json& tmp) -> const Json* {
                    const auto& keys = node.get<std::vector<std::pair<std::string, Node>>>();
                    Json obj(rapidjson::kObjectType);
                    for (size_t i = 0; i < keys.size(); ++i) {
                        Json tv, v;
                        const Json* r = ev(node.args[i], ctx, tv);
                        if (r == &tv) v = std::move(tv);
                        else shallow_copy(v, *r, *ctx.a);
                        Json k;
                        k.SetString(rapidjson::StringRef(keys[i].first.data(), keys[i].first.size()));
                        obj.AddMember(k, v, *ctx.a);
                    }
                    tmp = std::move(obj);
                    return &tmp;
                };
                h.return_template = std::move(t);
            } else {
                h.return_template = c.expr(ret->value);
            }
        }
        c.loc.pop_back();
    }
    c.alias_scopes.pop_back();

    // Bookkeeping: joined properties, tracked datasets, the dependency graph.
    for (const HopJoin& j : h.joins) {
        auto key = std::make_pair(h.datasets[static_cast<size_t>(j.alias)], j.prop);
        if (std::find(c.prog.joins.begin(), c.prog.joins.end(), key) == c.prog.joins.end()) c.prog.joins.push_back(key);
    }
    if (track_context && h.track && c.s_node >= 0) {
        int base = static_cast<int>(c.prog.graph.node_dataset.size());
        for (const std::string& d : h.datasets) {
            c.prog.graph.node_dataset.push_back(d);
            if (std::find(c.prog.tracked.begin(), c.prog.tracked.end(), d) == c.prog.tracked.end())
                c.prog.tracked.push_back(d);
        }
        for (const HopJoin& j : h.joins) {
            DepEdge edge;
            edge.to = base + j.alias;
            edge.to_prop = j.prop;
            if (is_path(j.bound) && j.bound.path->var == Var::S && !j.bound.path->keys.empty()) {
                edge.from = c.s_node;
                edge.from_path = j.bound.path->text;
            } else if (is_path(j.bound) && j.bound.path->var == Var::Alias && !j.bound.path->keys.empty()) {
                edge.from = base + j.bound.path->alias;
                edge.from_path = j.bound.path->text;
            } else {
                edge.from = c.s_node;  // not invertible: recorded so dependents() can warn
            }
            c.prog.graph.edges.push_back(edge);
        }
        // What `_S` stands for in the next spec of a chain.
        c.s_node = (!h.has_template && h.return_aliases.size() == 1) ? base + h.return_aliases[0] : -1;
    } else {
        c.s_node = -1;
    }
    c.prog.uses_lookups = true;
    return h;
}

void hook_hops_specs(Compiler& c, Node& n, const Json& call, size_t first) {
    auto chain = std::make_shared<HopsChain>();
    int saved_s = c.s_node;
    bool track_context = c.main_context;
    if (!track_context) c.s_node = -1;
    for (size_t i = first; i < call.Size(); ++i) {
        c.loc.push_back(std::to_string(i));
        chain->specs.push_back(compile_spec(c, call[static_cast<rapidjson::SizeType>(i)], track_context));
        c.loc.pop_back();
    }
    c.s_node = saved_s;
    n.data = chain;
}

void hook_hops(Compiler& c, Node& n, const Json& call) { hook_hops_specs(c, n, call, 1); }

void hook_apply_hops(Compiler& c, Node& n, const Json& call) {
    c.loc.push_back("1");
    if (!call[1].IsString()) c.fail("the rule name must be a string");
    auto index = std::make_shared<int>(-1);
    c.rule_refs.push_back({std::string(sv(call[1])), c.pointer(), index});
    c.loc.pop_back();
    hook_hops_specs(c, n, call, 2);
    // the rule index travels in args[0]'s data slot
    Node r;
    r.name = "rule";
    r.data = index;
    n.args.push_back(std::move(r));
}

void hook_apply(Compiler& c, Node& n, const Json& call) {
    c.loc.push_back("1");
    if (!call[1].IsString()) c.fail("the rule name must be a string");
    auto index = std::make_shared<int>(-1);
    c.rule_refs.push_back({std::string(sv(call[1])), c.pointer(), index});
    c.loc.pop_back();
    Node r;
    r.name = "rule";
    r.data = index;
    n.args.push_back(std::move(r));
    n.args.push_back(c.arg(call, 2));
}

// ---- evaluating ------------------------------------------------------------------------------
std::string_view entity_id(const Json& e) {
    if (e.IsObject()) {
        auto it = e.FindMember("_id");
        if (it != e.MemberEnd() && it->value.IsString()) return sv(it->value);
    }
    return {};
}

void sort_by_id(std::vector<const Json*>& v) {
    std::stable_sort(v.begin(), v.end(), [](const Json* a, const Json* b) { return entity_id(*a) < entity_id(*b); });
}

// One spec with _S = `s`; appends results to `out` (pointers into lookup docs or the pool).
void eval_spec(const HopsSpec& h, const Json& s, Ctx& c, std::vector<const Json*>& out) {
    const size_t n = h.aliases.size();
    Frame frame{&s, c.frame ? c.frame->T : nullptr, c.frame ? c.frame->parent : nullptr};
    Ctx hc = c;
    hc.frame = &frame;
    std::vector<std::vector<const Json*>> rows(1, std::vector<const Json*>(n, nullptr)), next;
    std::vector<const Json*> candidates;
    for (const HopJoin& j : h.joins) {
        next.clear();
        const std::string& dataset = h.datasets[static_cast<size_t>(j.alias)];
        for (auto& row : rows) {
            hc.aliases = row.data();
            Json t;
            const Json* v = ev(j.bound, hc, t);
            candidates.clear();
            each(v, [&](const Json& key) {
                if (key.IsNull()) return;
                const std::vector<const Json*>* found = c.rs ? c.rs->find(dataset, j.prop, key) : nullptr;
                if (found) candidates.insert(candidates.end(), found->begin(), found->end());
            });
            if (candidates.size() > 1) {
                std::sort(candidates.begin(), candidates.end());
                candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
                sort_by_id(candidates);
            }
            const Node& subset = h.subsets[static_cast<size_t>(j.alias)];
            for (const Json* e : candidates) {
                if (subset.eval) {
                    Frame sf{e, nullptr, &frame};
                    Ctx sc = hc;
                    sc.frame = &sf;
                    Json st;
                    if (!truthy(*ev(subset, sc, st))) continue;
                }
                auto r = row;
                r[static_cast<size_t>(j.alias)] = e;
                next.push_back(std::move(r));
            }
        }
        rows.swap(next);
        if (rows.empty()) return;
    }
    std::unordered_set<const Json*> seen;
    for (auto& row : rows) {
        hc.aliases = row.data();
        bool ok = true;
        for (const Node& f : h.filters) {
            Json t;
            if (!truthy(*ev(f, hc, t))) {
                ok = false;
                break;
            }
        }
        if (!ok) continue;
        if (h.has_template) {
            Json t;
            const Json* r = ev(h.return_template, hc, t);
            if (r->IsNull()) continue;
            auto* keep = new (c.a->Malloc(sizeof(Json))) Json();
            if (r == &t) *keep = std::move(t);
            else shallow_copy(*keep, *r, *c.a);
            out.push_back(keep);
        } else {
            for (int a : h.return_aliases)
                if (row[static_cast<size_t>(a)] && seen.insert(row[static_cast<size_t>(a)]).second)
                    out.push_back(row[static_cast<size_t>(a)]);
        }
    }
}

void eval_chain(const HopsChain& chain, Ctx& c, std::vector<const Json*>& results) {
    std::vector<const Json*> inputs{c.frame ? c.frame->S : &kNull}, outputs;
    for (const HopsSpec& h : chain.specs) {
        outputs.clear();
        for (const Json* s : inputs) {
            if (!h.recurse) {
                eval_spec(h, *s, c, outputs);
                continue;
            }
            std::unordered_set<std::string_view> seen;
            std::string_view root = entity_id(*s);
            std::vector<const Json*> frontier{s}, level;
            for (int depth = 0; !frontier.empty() && (h.max_depth < 0 || depth < h.max_depth); ++depth) {
                level.clear();
                for (const Json* e : frontier) eval_spec(h, *e, c, level);
                frontier.clear();
                for (const Json* e : level) {
                    std::string_view id = entity_id(*e);
                    if (!seen.insert(id).second) continue;
                    frontier.push_back(e);
                    if (h.exclude_root && id == root) continue;
                    outputs.push_back(e);
                }
            }
        }
        inputs.swap(outputs);
    }
    results = std::move(inputs);
}

const Json* results_list(const std::vector<const Json*>& results, Ctx& c, Json& tmp) {
    Json list(rapidjson::kArrayType);
    list.Reserve(static_cast<rapidjson::SizeType>(results.size()), *c.a);
    for (const Json* e : results) push_copy(list, *e, c);
    tmp = std::move(list);
    return &tmp;
}

const Json* f_hops(const Node& n, Ctx& c, Json& tmp) {
    std::vector<const Json*> results;
    eval_chain(n.get<HopsChain>(), c, results);
    return results_list(results, c, tmp);
}

// Applies rule `rule` to each value (or the single value); drops filtered ones.
const Json* apply_to(int rule, const Json* v, Ctx& c, Json& tmp, bool single) {
    if (single) {
        Json target;
        if (!apply_rule(rule, *v, c, target)) return &kNull;
        tmp = std::move(target);
        return &tmp;
    }
    Json list(rapidjson::kArrayType);
    each(v, [&](const Json& e) {
        Json target;
        if (apply_rule(rule, e, c, target)) list.PushBack(target, *c.a);
    });
    tmp = std::move(list);
    return &tmp;
}

const Json* f_apply_hops(const Node& n, Ctx& c, Json& tmp) {
    std::vector<const Json*> results;
    eval_chain(n.get<HopsChain>(), c, results);
    Json t;
    const Json* list = results_list(results, c, t);
    return apply_to(n.args.back().get<int>(), list, c, tmp, false);
}

const Json* f_apply(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    const Json* v = ev(n.args[1], c, t);
    int rule = n.args[0].get<int>();
    if (v->IsNull()) return &kNull;
    return apply_to(rule, v, c, tmp, !v->IsArray());
}

const Json* f_lookup_entity(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    const Json* ds = first_value(ev(n.args[0], c, t1));
    const Json* id = ev(n.args[1], c, t2);
    if (!ds->IsString() || !c.rs) return &kNull;
    std::string dataset(sv(*ds));
    auto one = [&](const Json& key, Json& o) {
        if (!key.IsString()) return false;
        const std::vector<const Json*>* found = c.rs->find(dataset, "_id", key);
        if (!found || found->empty()) {
            o.SetNull();
            return true;
        }
        shallow_copy(o, *found->front(), *c.a);
        return true;
    };
    return map_values(id, c, tmp, one);
}

}  // namespace

void register_hops(FnTable& t) {
    t["hops"] = {1, -1, &f_hops, &hook_hops};
    t["apply-hops"] = {2, -1, &f_apply_hops, &hook_apply_hops};
    t["apply"] = {2, 2, &f_apply, &hook_apply};
    t["lookup-entity"] = {2, 2, &f_lookup_entity};
}

// ---- dependency tracking ---------------------------------------------------------------------
void dependents(const Program& program, const std::string& dataset, const Json& changed, LookupProvider* lookups,
                std::string& out, std::vector<std::string>* warnings) {
    const DepGraph& g = program.graph;
    // property → distinct values (insertion order)
    std::vector<std::pair<std::string, std::vector<const Json*>>> result;
    std::map<std::string, std::unordered_set<std::string>> seen;
    std::vector<std::unique_ptr<rapidjson::Document>> docs;
    auto warn = [&](const std::string& w) {
        if (warnings && std::find(warnings->begin(), warnings->end(), w) == warnings->end()) warnings->push_back(w);
    };
    std::function<void(int, const std::vector<const Json*>&, int)> walk =
        [&](int node, const std::vector<const Json*>& entities, int depth) {
            if (depth > 16 || entities.empty()) return;
            for (const DepEdge& e : g.edges) {
                if (e.to != node) continue;
                if (e.from_path.empty()) {
                    warn("a join into \"" + g.node_dataset[static_cast<size_t>(node)] + "\"." + e.to_prop +
                         " is not on a plain path of the source side; its changes cannot be traced back");
                    continue;
                }
                std::vector<const Json*> keys;
                std::vector<std::string> path = split_path(e.to_prop);
                for (const Json* ent : entities) path_values(*ent, path, keys);
                if (keys.empty()) continue;
                if (e.from == 0) {
                    auto it = std::find_if(result.begin(), result.end(), [&](auto& p) { return p.first == e.from_path; });
                    if (it == result.end()) {
                        result.push_back({e.from_path, {}});
                        it = result.end() - 1;
                    }
                    auto& s = seen[e.from_path];
                    for (const Json* k : keys)
                        if (s.insert(key_text(*k)).second) it->second.push_back(k);
                    continue;
                }
                if (!lookups) {
                    warn("multi-hop dependencies need dataset lookups");
                    continue;
                }
                auto values = std::make_unique<rapidjson::Document>(rapidjson::kArrayType);
                std::unordered_set<std::string> distinct;
                for (const Json* k : keys)
                    if (distinct.insert(key_text(*k)).second)
                        {
                        Json copy;
                        deep_copy(copy, *k, values->GetAllocator());
                        values->PushBack(copy, values->GetAllocator());
                    }
                auto doc = std::make_unique<rapidjson::Document>();
                lookups->lookup(g.node_dataset[static_cast<size_t>(e.from)], e.from_path, *values, *doc);
                std::vector<const Json*> parents;
                if (doc->IsArray())
                    for (const Json& p : doc->GetArray()) {
                        auto del = p.IsObject() ? p.FindMember("_deleted") : p.MemberEnd();
                        if (p.IsObject() && (del == p.MemberEnd() || !del->value.IsTrue())) parents.push_back(&p);
                    }
                docs.push_back(std::move(values));
                docs.push_back(std::move(doc));
                walk(e.from, parents, depth + 1);
            }
        };
    std::vector<const Json*> entities;
    if (changed.IsArray())
        for (const Json& e : changed.GetArray())
            if (e.IsObject()) entities.push_back(&e);
    for (size_t node = 1; node < g.node_dataset.size(); ++node)
        if (g.node_dataset[node] == dataset) walk(static_cast<int>(node), entities, 0);

    rapidjson::Document doc(rapidjson::kArrayType);
    auto& a = doc.GetAllocator();
    for (auto& [property, values] : result) {
        Json item(rapidjson::kObjectType), list(rapidjson::kArrayType);
        for (const Json* v : values) {
            Json copy;
            deep_copy(copy, *v, a);
            list.PushBack(copy, a);
        }
        item.AddMember("property", Json(property.c_str(), a), a);
        item.AddMember("values", list, a);
        doc.PushBack(item, a);
    }
    out += serialize(doc);
}

}  // namespace sluice::dtl
