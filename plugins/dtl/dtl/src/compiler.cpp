// compiler.cpp — DTL JSON → compiled nodes; paths; the function tables; entry points.
#include "engine.hpp"

#include <algorithm>
#include <cmath>

namespace sluice::dtl {

const Json kNull;
const Json kEmptyList(rapidjson::kArrayType);

// ---- errors ----------------------------------------------------------------------------------
CompileError::CompileError(std::string pointer, std::string message)
    : std::runtime_error(pointer + ": " + message), pointer_(std::move(pointer)), message_(std::move(message)) {}

static std::string escape_pointer(std::string_view seg) {
    std::string out;
    for (char ch : seg) {
        if (ch == '~') out += "~0";
        else if (ch == '/') out += "~1";
        else out += ch;
    }
    return out;
}
std::string Compiler::pointer() const {
    std::string p = base;
    for (const std::string& seg : loc) p += "/" + escape_pointer(seg);
    return p;
}

static size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (size_t j = 1; j <= b.size(); ++j)
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
        std::swap(prev, cur);
    }
    return prev[b.size()];
}
// " (did you mean "x"?)" for the closest known name, or "".
static std::string suggestion(const std::string& name, const std::vector<std::string>& names) {
    std::string best;
    size_t best_d = (name.size() <= 4 ? 1 : name.size() <= 8 ? 2 : 3) + 1;
    for (const std::string& candidate : names) {
        size_t d = edit_distance(name, candidate);
        if (d < best_d || (d == best_d && !best.empty() && candidate < best)) {
            best = candidate;
            best_d = d;
        }
    }
    return best.empty() ? "" : " (did you mean \"" + best + "\"?)";
}
template <class Table>
static std::vector<std::string> names_of(const Table& table) {
    std::vector<std::string> out;
    for (const auto& entry : table) out.push_back(entry.first);
    std::sort(out.begin(), out.end());
    return out;
}

// ---- tables ----------------------------------------------------------------------------------
const FnTable& expression_functions() {
    static const FnTable table = [] {
        FnTable t;
        register_core(t);
        register_lists(t);
        register_strings(t);
        register_numbers(t);
        register_datetime(t);
        register_dicts(t);
        register_hops(t);
        return t;
    }();
    return table;
}
const TxTable& transform_functions() {
    static const TxTable table = [] {
        TxTable t;
        register_transforms(t);
        return t;
    }();
    return table;
}

// ---- literals and paths ----------------------------------------------------------------------
static const Json* eval_literal(const Node& n, Ctx&, Json&) { return n.lit; }
static const Json* eval_path(const Node& n, Ctx& c, Json& tmp) { return resolve_path(*n.path, c, tmp); }
bool is_literal(const Node& n) { return n.eval == &eval_literal; }
bool is_path(const Node& n) { return n.eval == &eval_path; }

void node_refs(const Node& n, bool& reads_s, std::set<std::pair<int, int>>& aliases, bool& other) {
    if (n.path) {
        switch (n.path->var) {
            case Var::S: reads_s = true; break;
            case Var::Alias: aliases.insert({n.path->scope, n.path->alias}); break;
            case Var::U: break;
            default: other = true; break;
        }
    }
    for (const Node& a : n.args) node_refs(a, reads_s, aliases, other);
    for (const auto& branch : n.branches)
        for (const Node& a : branch) node_refs(a, reads_s, aliases, other);
}

const Json* Compiler::keep(const Json& v) {
    prog.store.emplace_back();
    deep_copy(prog.store.back(), v, prog.literals.GetAllocator());
    return &prog.store.back();
}
Node Compiler::literal(const Json& v) {
    Node n;
    n.eval = &eval_literal;
    n.name = "literal";
    n.lit = keep(v);
    return n;
}

static bool split_elements(std::string_view rest, std::vector<std::string>& keys, std::string* error) {
    size_t i = 0;
    while (i <= rest.size()) {
        std::string key;
        if (i < rest.size() && rest[i] == '\'') {
            ++i;
            bool closed = false;
            while (i < rest.size()) {
                if (rest[i] == '\'') {
                    if (i + 1 < rest.size() && rest[i + 1] == '\'') {
                        key += '\'';
                        i += 2;
                        continue;
                    }
                    closed = true;
                    ++i;
                    break;
                }
                key += rest[i++];
            }
            if (!closed) {
                *error = "unterminated quote in path";
                return false;
            }
            if (i < rest.size() && rest[i] != '.') {
                *error = "unexpected text after a quoted path element";
                return false;
            }
        } else {
            size_t dot = rest.find('.', i);
            if (dot == std::string_view::npos) dot = rest.size();
            key = std::string(rest.substr(i, dot - i));
            if (key.empty()) {
                *error = "empty path element";
                return false;
            }
            i = dot;
        }
        keys.push_back(std::move(key));
        if (i >= rest.size()) break;
        ++i;  // skip '.'
        if (i == rest.size()) {
            *error = "path ends with '.'";
            return false;
        }
    }
    return true;
}

std::vector<std::string> split_path(const std::string& dotted) {
    std::vector<std::string> keys;
    std::string error;
    if (!dotted.empty()) split_elements(dotted, keys, &error);
    return keys;
}

bool Compiler::parse_path(std::string_view s, Path& out, std::string* error) {
    out = Path();
    std::string_view rest;
    if (s == "_.") {
        out.var = Var::U;
        return true;
    }
    if (s.size() == 2 && s[0] == '_') {  // bare "_S", "_T", …: the whole value
        switch (s[1]) {
            case 'S': out.var = Var::S; return true;
            case 'T': out.var = Var::T; return true;
            case 'B': out.var = Var::B; return true;
            default: break;
        }
    }
    if (s.size() >= 3 && s[0] == '_' && s[2] == '.') {
        switch (s[1]) {
            case 'S': out.var = Var::S; break;
            case 'T': out.var = Var::T; break;
            case 'P': out.var = Var::P; break;
            case 'R': out.var = Var::R; break;
            case 'B': out.var = Var::B; break;
            default: break;
        }
        if (out.var != Var::None) rest = s.substr(3);
    }
    if (out.var == Var::None && s.size() >= 2 && s[0] == '_' && s[1] == '.') {
        out.var = Var::U;
        rest = s.substr(2);
    }
    if (out.var == Var::None) {
        if (alias_scopes.empty()) return false;
        size_t dot = s.find('.');
        if (dot == std::string_view::npos || dot == 0) return false;
        std::string_view head = s.substr(0, dot);
        const AliasScope& scope = alias_scopes.back();
        for (size_t i = 0; i < scope.names.size(); ++i) {
            if (scope.names[i] == head) {
                out.var = Var::Alias;
                out.alias = static_cast<int>(i);
                out.scope = scope.id;
                break;
            }
        }
        if (out.var == Var::None) return false;
        rest = s.substr(dot + 1);
    }
    if (!rest.empty() && !split_elements(rest, out.keys, error)) return true;
    if (out.var == Var::P || out.var == Var::R) {
        size_t k = 0;
        out.up = out.var == Var::P ? 1 : 0;
        while (out.var == Var::P && k < out.keys.size() && out.keys[k] == "_P") {
            ++out.up;
            ++k;
        }
        if (k >= out.keys.size() || (out.keys[k] != "_S" && out.keys[k] != "_T")) {
            *error = std::string(out.var == Var::P ? "_P" : "_R") + " must be followed by _S or _T";
            return true;
        }
        out.target = out.keys[k] == "_T";
        out.keys.erase(out.keys.begin(), out.keys.begin() + static_cast<long>(k) + 1);
    }
    for (size_t i = 0; i < out.keys.size(); ++i) out.text += (i ? "." : "") + out.keys[i];
    return true;
}

static std::string arity_text(int min_args, int max_args) {
    std::string expect = max_args < 0            ? "at least " + std::to_string(min_args)
                         : min_args == max_args ? std::to_string(min_args)
                                                : std::to_string(min_args) + " to " + std::to_string(max_args);
    return expect + " argument" + (expect == "1" ? "" : "s");
}

Node Compiler::expr(const Json& j) {
    if (j.IsString()) {
        Path p;
        std::string error;
        if (parse_path(sv(j), p, &error)) {
            if (!error.empty()) fail("bad path \"" + std::string(sv(j)) + "\": " + error);
            Node n;
            n.eval = &eval_path;
            n.name = "path";
            n.path = std::make_shared<Path>(std::move(p));
            return n;
        }
        return literal(j);
    }
    if (!j.IsArray()) return literal(j);
    if (j.Empty()) return literal(j);  // [] is the empty list
    if (!j[0].IsString()) fail("a function call must start with a function name");
    std::string name(sv(j[0]));
    const auto& table = expression_functions();
    auto it = table.find(name);
    if (it == table.end()) {
        if (transform_functions().count(name))
            fail("\"" + name + "\" is a transform function; it cannot be used as an expression");
        fail("unknown function \"" + name + "\"" + suggestion(name, names_of(table)));
    }
    const FnDef& def = it->second;
    if (def.unsupported) fail("function \"" + name + "\" is not supported: " + def.unsupported);
    int nargs = static_cast<int>(j.Size()) - 1;
    if (nargs < def.min_args || (def.max_args >= 0 && nargs > def.max_args))
        fail("function \"" + name + "\" takes " + arity_text(def.min_args, def.max_args) + ", got " +
             std::to_string(nargs));
    Node n;
    n.eval = def.eval;
    n.name = it->first.c_str();
    if (def.hook) def.hook(*this, n, j);
    else compile_args(n, j);
    return n;
}

void Compiler::compile_args(Node& n, const Json& call) {
    n.args.reserve(call.Size() - 1);
    for (rapidjson::SizeType i = 1; i < call.Size(); ++i) n.args.push_back(arg(call, i));
}

Node Compiler::step(const Json& j) {
    if (!j.IsArray() || j.Empty() || !j[0].IsString()) fail("a transform must be a list starting with a function name");
    std::string name(sv(j[0]));
    const auto& table = transform_functions();
    auto it = table.find(name);
    if (it == table.end()) {
        if (expression_functions().count(name))
            fail("\"" + name + "\" is an expression function, not a transform function");
        fail("unknown transform function \"" + name + "\"" + suggestion(name, names_of(table)));
    }
    const TxDef& def = it->second;
    int nargs = static_cast<int>(j.Size()) - 1;
    if (nargs < def.min_args || (def.max_args >= 0 && nargs > def.max_args))
        fail("transform \"" + name + "\" takes " + arity_text(def.min_args, def.max_args) + ", got " +
             std::to_string(nargs));
    Node n;
    n.exec = def.exec;
    n.name = it->first.c_str();
    if (def.hook) def.hook(*this, n, j);
    else compile_args(n, j);
    return n;
}

std::vector<Node> Compiler::steps(const Json& j) {
    std::vector<Node> out;
    if (!j.IsArray()) fail("expected a transform or a list of transforms");
    if (j.Empty()) return out;
    if (j[0].IsString()) {
        out.push_back(step(j));
        return out;
    }
    for (rapidjson::SizeType i = 0; i < j.Size(); ++i) {
        loc.push_back(std::to_string(i));
        out.push_back(step(j[i]));
        loc.pop_back();
    }
    return out;
}

// ---- path evaluation -------------------------------------------------------------------------
static const Json* member(const Json& obj, const std::string& key) {
    auto it = obj.FindMember(Json(rapidjson::StringRef(key.data(), key.size())));
    return it == obj.MemberEnd() ? nullptr : &it->value;
}
static void collect(const Json& v, const std::vector<std::string>& keys, size_t i, Json& out, Alloc& a) {
    if (i == keys.size()) {
        if (v.IsArray()) {
            for (const Json& e : v.GetArray()) {
                if (e.IsNull()) continue;
                Json c;
                shallow_copy(c, e, a);
                out.PushBack(c, a);
            }
        } else if (!v.IsNull()) {
            Json c;
            shallow_copy(c, v, a);
            out.PushBack(c, a);
        }
        return;
    }
    if (v.IsArray()) {
        for (const Json& e : v.GetArray()) collect(e, keys, i, out, a);
    } else if (v.IsObject()) {
        if (const Json* m = member(v, keys[i])) collect(*m, keys, i + 1, out, a);
    }
}
static void collect_ptrs(const Json& v, const std::vector<std::string>& keys, size_t i,
                         std::vector<const Json*>& out) {
    if (i == keys.size()) {
        if (v.IsArray()) {
            for (const Json& e : v.GetArray())
                if (!e.IsNull()) out.push_back(&e);
        } else if (!v.IsNull()) {
            out.push_back(&v);
        }
        return;
    }
    if (v.IsArray()) {
        for (const Json& e : v.GetArray()) collect_ptrs(e, keys, i, out);
    } else if (v.IsObject()) {
        if (const Json* m = member(v, keys[i])) collect_ptrs(*m, keys, i + 1, out);
    }
}
void path_values(const Json& entity, const std::vector<std::string>& keys, std::vector<const Json*>& out) {
    collect_ptrs(entity, keys, 0, out);
}

const Json* resolve_path(const Path& p, Ctx& c, Json& tmp) {
    const Json* base = nullptr;
    switch (p.var) {
        case Var::S: base = c.frame ? c.frame->S : nullptr; break;
        case Var::T: base = c.frame ? c.frame->T : nullptr; break;
        case Var::U: base = c.U; break;
        case Var::B: base = c.B; break;
        case Var::P: {
            const Frame* f = c.frame;
            for (int i = 0; i < p.up && f; ++i) f = f->parent;
            if (f) base = p.target ? f->T : f->S;
            break;
        }
        case Var::R: base = c.root ? (p.target ? c.root->T : c.root->S) : nullptr; break;
        case Var::Alias: base = c.aliases ? c.aliases[p.alias] : nullptr; break;
        case Var::None: break;
    }
    if (!base) return &kNull;
    const auto& keys = p.keys;
    if (keys.empty()) return base;
    if (p.var == Var::S && keys.size() == 1 && keys[0] == "$ids" && base->IsObject() && !member(*base, keys[0])) {
        // dynamic $ids: [NI(_id)] when the entity has none
        const Json* id = member(*base, "_id");
        tmp.SetArray();
        if (id && id->IsString()) {
            Json ni;
            set_string(ni, "~:" + std::string(sv(*id)), *c.a);
            tmp.PushBack(ni, *c.a);
        }
        return &tmp;
    }
    const Json* cur = base;
    size_t i = 0;
    for (; i < keys.size(); ++i) {
        if (cur->IsObject()) {
            cur = member(*cur, keys[i]);
            if (!cur) return &kNull;
        } else if (cur->IsArray()) {
            break;
        } else {
            return &kNull;
        }
    }
    if (i == keys.size()) return cur;
    Json out(rapidjson::kArrayType);
    collect(*cur, keys, i, out, *c.a);
    tmp = std::move(out);
    return &tmp;
}

bool wildcard_match(std::string_view p, std::string_view t) {
    size_t pi = 0, ti = 0, star = std::string_view::npos, mark = 0;
    while (ti < t.size()) {
        if (pi < p.size() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti]))) {
            ++pi;
            ++ti;
        } else if (pi < p.size() && p[pi] == '*') {
            star = pi++;
            mark = ti;
        } else if (star != std::string_view::npos) {
            pi = star + 1;
            ti = ++mark;
        } else {
            return false;
        }
    }
    while (pi < p.size() && p[pi] == '*') ++pi;
    return pi == p.size();
}

void set_member(Json& obj, std::string_view key, Json& value, Alloc& a) {
    auto it = obj.FindMember(Json(rapidjson::StringRef(key.data(), key.size())));
    if (it != obj.MemberEnd()) {
        it->value = value;  // moves
        return;
    }
    Json k;
    k.SetString(key.data(), static_cast<rapidjson::SizeType>(key.size()), a);
    obj.AddMember(k, value, a);
}

std::string key_text(const Json& v) {
    switch (type_of(v)) {
        case Type::Null: return "z";
        case Type::Bool: return v.GetBool() ? "b1" : "b0";
        case Type::Int: return "n" + std::to_string(v.GetInt64());
        case Type::BigInt:
        case Type::Float:
        case Type::Decimal: {
            Num n;
            if (!Num::from(v, n)) return "s" + serialize(v);
            if (n.k == Num::F && !std::isfinite(n.f)) return "f" + serialize(v);
            Decimal d = n.as_dec();
            d.normalize_trailing(0);
            return "n" + d.str();
        }
        case Type::Dict:
        case Type::List: return "j" + serialize(v, true);
        default: return "s" + std::string(sv(v));
    }
}

// ---- entry points ----------------------------------------------------------------------------
std::shared_ptr<const Program> compile(const Json& rules, const Options& options, const std::string& pointer_base) {
    auto prog = std::make_shared<Program>();
    prog->options = options;
    Compiler c(*prog);
    c.base = pointer_base;
    if (!rules.IsObject()) c.fail("\"rules\" must be an object of rule name to list of transforms");
    int idx = 0;
    for (auto it = rules.MemberBegin(); it != rules.MemberEnd(); ++it, ++idx) {
        prog->rules.push_back(Rule{std::string(sv(it->name)), {}});
        prog->rule_index[prog->rules.back().name] = idx;
    }
    auto d = prog->rule_index.find("default");
    if (d == prog->rule_index.end()) c.fail("\"rules\" has no \"default\" rule");
    prog->default_rule = d->second;
    idx = 0;
    for (auto it = rules.MemberBegin(); it != rules.MemberEnd(); ++it, ++idx) {
        const std::string& name = prog->rules[static_cast<size_t>(idx)].name;
        c.base = pointer_base + "/" + escape_pointer(name);
        c.loc.clear();
        c.main_context = name == "default";
        c.s_node = c.main_context ? 0 : -1;
        if (!it->value.IsArray()) c.fail("a rule must be a list of transforms");
        std::vector<Node> steps;
        for (rapidjson::SizeType i = 0; i < it->value.Size(); ++i) {
            c.loc.assign(1, std::to_string(i));
            steps.push_back(c.step(it->value[i]));
        }
        prog->rules[static_cast<size_t>(idx)].steps = std::move(steps);
    }
    std::vector<std::string> rule_names;
    for (const Rule& r : prog->rules) rule_names.push_back(r.name);
    for (const auto& ref : c.rule_refs) {
        auto found = prog->rule_index.find(ref.name);
        if (found == prog->rule_index.end())
            throw CompileError(ref.pointer, "unknown rule \"" + ref.name + "\"" + suggestion(ref.name, rule_names));
        *ref.index = found->second;
    }
    return prog;
}

std::shared_ptr<const Program> compile_transform(const Json& config,
                                                const std::vector<std::pair<std::string, std::string>>& namespaces) {
    if (!config.IsObject()) throw CompileError("", "the transform config must be an object");
    auto r = config.FindMember("rules");
    auto ex = config.FindMember("expression");
    if (ex != config.MemberEnd()) {
        if (r != config.MemberEnd()) throw CompileError("/expression", "give either \"rules\" or \"expression\", not both");
        // Expression mode: {"_id": <input _id or "0">, "value": EXPR} per input entity.
        rapidjson::Document rules;
        rules.Parse(R"({"default": [["add", "_id", ["if", ["is-string", "_S._id"], "_S._id", "0"]], ["add", "value", null]]})");
        deep_copy(rules["default"][1][2], ex->value, rules.GetAllocator());
        Options o;
        o.id_required = false;
        o.expression_mode = true;
        o.namespaces = namespaces;
        const std::string synthetic = "/rules/default/1/2";
        try {
            return compile(rules, o, "/rules");
        } catch (const CompileError& e) {
            std::string p = e.pointer();
            if (p.compare(0, synthetic.size(), synthetic) == 0) p = "/expression" + p.substr(synthetic.size());
            throw CompileError(p, e.message());
        }
    }
    if (r == config.MemberEnd()) throw CompileError("", "the DTL transform has no \"rules\" (or \"expression\")");
    Options o;
    o.namespaces = namespaces;
    auto id = config.FindMember("id_required");
    if (id != config.MemberEnd()) {
        if (!id->value.IsBool()) throw CompileError("/id_required", "\"id_required\" must be a boolean");
        o.id_required = id->value.GetBool();
    }
    auto trig = config.FindMember("trigger_on");
    if (trig != config.MemberEnd() && !trig->value.IsNull()) {
        const Json& t = trig->value;
        if (!t.IsObject() || !t.HasMember("key") || !t["key"].IsString())
            throw CompileError("/trigger_on", "\"trigger_on\" must be an object with a string \"key\"");
        o.trigger_key = std::string(sv(t["key"]));
        o.trigger_value = t.HasMember("value") && t["value"].IsString() ? std::string(sv(t["value"])) : "*";
    }
    return compile(r->value, o, "/rules");
}

std::shared_ptr<const Expression> compile_expression(const Json& expression, const std::string& pointer_base) {
    auto e = std::make_shared<Expression>();
    e->program = std::make_shared<Program>();
    Compiler c(*e->program);
    c.base = pointer_base;
    c.main_context = true;
    e->root = c.expr(expression);
    if (!c.rule_refs.empty())
        throw CompileError(c.rule_refs.front().pointer, "an expression has no rules to apply");
    return e;
}

std::vector<std::pair<std::string, std::string>> joined_properties(const Program& program) { return program.joins; }
std::vector<std::string> tracked_datasets(const Program& program) { return program.tracked; }

}  // namespace sluice::dtl
