// fn_core.cpp — boolean logic, comparisons, conditionals, nulls, literal, type tests, boolean.
#include "fn_common.hpp"

namespace sluice::dtl {

// ---- literal -------------------------------------------------------------------------------
static void hook_literal(Compiler& c, Node& n, const Json& call) {
    n.lit = c.keep(call[1]);
}
static const Json* f_literal(const Node& n, Ctx&, Json&) { return n.lit; }

// ---- logic ---------------------------------------------------------------------------------
static const Json* f_and(const Node& n, Ctx& c, Json& tmp) {
    for (const Node& a : n.args) {
        Json t;
        if (!truthy(*ev(a, c, t))) return ret_bool(tmp, false);
    }
    return ret_bool(tmp, true);
}
static const Json* f_or(const Node& n, Ctx& c, Json& tmp) {
    for (const Node& a : n.args) {
        Json t;
        if (truthy(*ev(a, c, t))) return ret_bool(tmp, true);
    }
    return ret_bool(tmp, false);
}
static const Json* f_not(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    bool all = true;
    for (const Node& a : n.args) {
        if (!truthy(*ev(a, c, t))) {
            all = false;
            break;
        }
    }
    return ret_bool(tmp, !all);
}
// all/any: [FUNC] VALUES
template <bool All>
static const Json* f_all_any(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    const Json* v = ev(n.args.back(), c, t);
    bool result = All;
    auto test = [&](const Json& e) {
        if (n.args.size() == 2) {
            Json r;
            return truthy(*eval_with(n.args[0], c, e, r));
        }
        return truthy(e);
    };
    if (v->IsArray()) {
        if (v->Empty()) return ret_bool(tmp, false);
        for (const Json& e : v->GetArray()) {
            bool ok = test(e);
            if (All && !ok) { result = false; break; }
            if (!All && ok) { result = true; break; }
        }
    } else {
        result = test(*v);
    }
    return ret_bool(tmp, result);
}

// ---- comparisons ---------------------------------------------------------------------------
bool list_equals(const Json& a, const Json& b) {
    if (a.IsArray() && b.IsArray()) return equals(a, b);
    if (a.IsArray()) return a.Size() == 1 && equals(a[0], b);
    if (b.IsArray()) return b.Size() == 1 && equals(a, b[0]);
    return equals(a, b);
}
bool overlaps(const Json& a, const Json& b) {
    bool found = false;
    each(&a, [&](const Json& x) {
        if (found || x.IsNull()) return;
        each(&b, [&](const Json& y) {
            if (!found && !y.IsNull() && equals(x, y)) found = true;
        });
    });
    return found;
}
const Json* f_eq(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    const Json* a = ev(n.args[0], c, t1);
    const Json* b = ev(n.args[1], c, t2);
    return ret_bool(tmp, list_equals(*a, *b));
}
const Json* f_eq_overlap(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    const Json* a = ev(n.args[0], c, t1);
    const Json* b = ev(n.args[1], c, t2);
    return ret_bool(tmp, overlaps(*a, *b));
}
static const Json* f_neq(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    const Json* a = ev(n.args[0], c, t1);
    const Json* b = ev(n.args[1], c, t2);
    return ret_bool(tmp, !list_equals(*a, *b));
}
// gt/gte/lt/lte: first value of each side; false when either is null.
template <int Op>
static const Json* f_order(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    const Json* a = first_value(ev(n.args[0], c, t1));
    const Json* b = first_value(ev(n.args[1], c, t2));
    if (a->IsNull() || b->IsNull()) return ret_bool(tmp, false);
    int r = compare(*a, *b);
    bool ok = Op == 0 ? r > 0 : Op == 1 ? r >= 0 : Op == 2 ? r < 0 : r <= 0;
    return ret_bool(tmp, ok);
}

// ---- conditionals (expression forms) -----------------------------------------------------------
static const Json* f_if(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    if (truthy(*ev(n.args[0], c, t))) return ev(n.args[1], c, tmp);
    if (n.args.size() > 2) return ev(n.args[2], c, tmp);
    return &kNull;
}
static const Json* f_case(const Node& n, Ctx& c, Json& tmp) {
    size_t i = 0;
    for (; i + 1 < n.args.size(); i += 2) {
        Json t;
        if (truthy(*ev(n.args[i], c, t))) return ev(n.args[i + 1], c, tmp);
    }
    if (i < n.args.size()) return ev(n.args[i], c, tmp);
    return &kNull;
}
static const Json* f_case_eq(const Node& n, Ctx& c, Json& tmp) {
    Json tv;
    const Json* v = own(ev(n.args[0], c, tv), tv, c);
    size_t i = 1;
    for (; i + 1 < n.args.size(); i += 2) {
        Json t;
        if (list_equals(*v, *ev(n.args[i], c, t))) return ev(n.args[i + 1], c, tmp);
    }
    if (i < n.args.size()) return ev(n.args[i], c, tmp);
    return &kNull;
}

// ---- nulls ---------------------------------------------------------------------------------
bool is_nullish(const Json& v) {
    if (v.IsNull()) return true;
    if (v.IsArray()) return v.Empty() || v[0].IsNull();
    return false;
}
static const Json* f_coalesce(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    const Json* v = ev(n.args.back(), c, t);
    auto pick = [&](const Json& e) {
        if (n.args.size() == 2) {
            Json r;
            return truthy(*eval_with(n.args[0], c, e, r));
        }
        return !e.IsNull();
    };
    if (v->IsArray()) {
        for (const Json& e : v->GetArray())
            if (pick(e)) return own(&e, tmp, c);
        return &kNull;
    }
    if (pick(*v)) return own(v, tmp, c);
    return &kNull;
}
static const Json* f_coalesce_args(const Node& n, Ctx& c, Json& tmp) {
    for (const Node& a : n.args) {
        const Json* v = ev(a, c, tmp);
        if (!is_nullish(*v)) return v;
    }
    return &kNull;
}
static const Json* f_if_null(const Node& n, Ctx& c, Json& tmp) {
    const Json* v = ev(n.args[0], c, tmp);
    if (is_nullish(*v)) return ev(n.args[1], c, tmp);
    return v;
}
static const Json* f_is_null(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    return ret_bool(tmp, is_nullish(*ev(n.args[0], c, t)));
}
static const Json* f_is_not_null(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    return ret_bool(tmp, !is_nullish(*ev(n.args[0], c, t)));
}

// ---- type tests: the value, or the first element of a list -----------------------------------
template <Type T1, Type T2 = T1>
static const Json* f_is_type(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    const Json* v = first_value(ev(n.args[0], c, t));
    Type ty = type_of(*v);
    return ret_bool(tmp, ty == T1 || ty == T2);
}
static const Json* f_is_datetime(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    DateTime d;
    return ret_bool(tmp, get_datetime(*first_value(ev(n.args[0], c, t)), d));
}
static const Json* f_is_list(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    return ret_bool(tmp, ev(n.args[0], c, t)->IsArray());
}
static bool empty_value(const Json& v) {
    return v.IsNull() || (v.IsArray() && v.Empty()) || (v.IsObject() && v.ObjectEmpty());
}
static const Json* f_is_empty(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    return ret_bool(tmp, empty_value(*ev(n.args[0], c, t)));
}
static const Json* f_is_not_empty(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    return ret_bool(tmp, !empty_value(*ev(n.args[0], c, t)));
}

// ---- boolean: [DEFAULT] VALUES -------------------------------------------------------------
static bool to_boolean(const Json& v, bool& out) {
    if (v.IsBool()) {
        out = v.GetBool();
        return true;
    }
    if (is_plain_string(v)) {
        std::string s = ascii_lower(sv(v));
        if (s == "true") { out = true; return true; }
        if (s == "false") { out = false; return true; }
        return false;
    }
    Num num;
    if (Num::from(v, num)) {
        out = num.as_double() != 0;
        return true;
    }
    return false;
}
static const Json* f_boolean(const Node& n, Ctx& c, Json& tmp) {
    Json t, dt;
    const Json* v = ev(n.args.back(), c, t);
    const Json* def = n.args.size() == 2 ? own(ev(n.args[0], c, dt), dt, c) : nullptr;
    return map_values(v, c, tmp, [&](const Json& e, Json& o) {
        bool b;
        if (to_boolean(e, b)) {
            o.SetBool(b);
            return true;
        }
        if (def) {
            copy_into(o, *def, c);
            return true;
        }
        return false;
    });
}

void register_core(FnTable& t) {
    t["literal"] = {1, 1, &f_literal, &hook_literal};
    t["and"] = {1, -1, &f_and};
    t["or"] = {1, -1, &f_or};
    t["not"] = {1, -1, &f_not};
    t["all"] = {1, 2, &f_all_any<true>};
    t["any"] = {1, 2, &f_all_any<false>};
    t["eq"] = {2, 2, &f_eq};
    t["neq"] = {2, 2, &f_neq};
    t["gt"] = {2, 2, &f_order<0>};
    t["gte"] = {2, 2, &f_order<1>};
    t["lt"] = {2, 2, &f_order<2>};
    t["lte"] = {2, 2, &f_order<3>};
    t["if"] = {2, 3, &f_if};
    t["case"] = {2, -1, &f_case};
    t["case-eq"] = {3, -1, &f_case_eq};
    t["coalesce"] = {1, 2, &f_coalesce};
    t["coalesce-args"] = {1, -1, &f_coalesce_args};
    t["if-null"] = {2, 2, &f_if_null};
    t["is-null"] = {1, 1, &f_is_null};
    t["is-not-null"] = {1, 1, &f_is_not_null};
    t["is-boolean"] = {1, 1, &f_is_type<Type::Bool>};
    t["is-bytes"] = {1, 1, &f_is_type<Type::Bytes>};
    t["is-datetime"] = {1, 1, &f_is_datetime};
    t["is-dict"] = {1, 1, &f_is_type<Type::Dict>};
    t["is-list"] = {1, 1, &f_is_list};
    t["is-empty"] = {1, 1, &f_is_empty};
    t["is-not-empty"] = {1, 1, &f_is_not_empty};
    t["is-integer"] = {1, 1, &f_is_type<Type::Int, Type::BigInt>};
    t["is-decimal"] = {1, 1, &f_is_type<Type::Decimal>};
    t["is-float"] = {1, 1, &f_is_type<Type::Float>};
    t["is-ni"] = {1, 1, &f_is_type<Type::Ni>};
    t["is-string"] = {1, 1, &f_is_type<Type::String>};
    t["is-uri"] = {1, 1, &f_is_type<Type::Uri>};
    t["is-uuid"] = {1, 1, &f_is_type<Type::Uuid>};
    t["boolean"] = {1, 2, &f_boolean};
}

}  // namespace sluice::dtl
