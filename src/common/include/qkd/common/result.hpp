#pragma once
// Expected-failure channel (STYLE.md habit 8): a value or an error, never both.
// Broken invariants abort instead; exceptions stay out of packet and request paths.
#include <cstdio>
#include <cstdlib>
#include <type_traits>
#include <utility>
#include <variant>

namespace qkd {

template <class E>
struct Err {
    E error;
};
template <class E>
Err(E) -> Err<E>;

template <class T, class E>
class [[nodiscard]] Result {
public:
    Result(T v) : v_(std::in_place_index<0>, std::move(v)) {}
    template <class E2>
    Result(Err<E2> e) : v_(std::in_place_index<1>, E(std::move(e.error))) {}

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() & { check(true); return std::get<0>(v_); }
    const T& value() const& { check(true); return std::get<0>(v_); }
    T&& value() && { check(true); return std::get<0>(std::move(v_)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    const E& error() const { check(false); return std::get<1>(v_); }
    E& error() { check(false); return std::get<1>(v_); }

private:
    void check(bool want_value) const {
        if (ok() != want_value) {  // misuse is a bug, not a runtime condition
            std::fputs(want_value ? "qkd::Result: value() on an error\n" : "qkd::Result: error() on a value\n", stderr);
            std::abort();
        }
    }
    std::variant<T, E> v_;
};

template <class E>
class [[nodiscard]] Result<void, E> {
public:
    Result() = default;
    template <class E2>
    Result(Err<E2> e) : err_(E(std::move(e.error))), has_err_(true) {}
    bool ok() const { return !has_err_; }
    explicit operator bool() const { return ok(); }
    const E& error() const {
        if (!has_err_) {
            std::fputs("qkd::Result: error() on a success\n", stderr);
            std::abort();
        }
        return err_;
    }

private:
    E err_{};
    bool has_err_ = false;
};

}  // namespace qkd
