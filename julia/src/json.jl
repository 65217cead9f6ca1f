# Minimal JSON reader and writer on Base only (no registry here, so no JSON.jl): run
# specs, bundle manifests, measurements and check outputs. Python uses its json module
# and measurements.py's write_json_atomic.
#
# Like Python's json, NaN and +-Infinity are read and written as bare words, so a
# diverged loss survives the round trip through the launcher.
# Twins: python/dlrosetta/measurements.py, r/R/json.R

struct JSONError <: Exception
    msg::String
end
Base.showerror(io::IO, e::JSONError) = print(io, "JSONError: ", e.msg)

const JSON_WORDS = ("true" => true, "false" => false, "null" => nothing,
                    "NaN" => NaN, "Infinity" => Inf, "-Infinity" => -Inf)
const JSON_NUMBER = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$"

"""
    parse_json(text)

Objects become `Dict{String,Any}`, arrays `Vector{Any}`, integer literals `Int`, other
numbers `Float64`, `null` `nothing`.
"""
function parse_json(text::AbstractString)
    s = String(text)
    value, i = parse_value(s, skip_space(s, 1))
    i = skip_space(s, i)
    i <= ncodeunits(s) && json_error(s, i, "unexpected trailing characters")
    return value
end

read_json(path::AbstractString) = parse_json(read(path, String))

function json_error(s::String, i::Int, what::String)
    line = count(==(UInt8('\n')), codeunits(s)[1:min(i, ncodeunits(s)) - 1]) + 1
    throw(JSONError("$what at line $line (byte $i)"))
end

function skip_space(s::String, i::Int)
    while i <= ncodeunits(s) && codeunit(s, i) in (0x20, 0x09, 0x0a, 0x0d)
        i += 1
    end
    return i
end

function expect_byte(s::String, i::Int, c::Char)
    (i <= ncodeunits(s) && codeunit(s, i) == UInt8(c)) || json_error(s, i, "expected '$c'")
    return i + 1
end

function parse_value(s::String, i::Int)
    i > ncodeunits(s) && json_error(s, i, "unexpected end of input")
    c = Char(codeunit(s, i))
    c == '{' && return parse_object(s, i)
    c == '[' && return parse_array(s, i)
    c == '"' && return parse_string(s, i)
    for (word, value) in JSON_WORDS
        if startswith(SubString(s, i), word)
            return value, i + ncodeunits(word)
        end
    end
    return parse_number(s, i)
end

function parse_object(s::String, i::Int)
    out = Dict{String,Any}()
    i = skip_space(s, i + 1)
    if i <= ncodeunits(s) && codeunit(s, i) == UInt8('}')
        return out, i + 1
    end
    while true
        key, i = parse_string(s, skip_space(s, i))
        i = expect_byte(s, skip_space(s, i), ':')
        out[key], i = parse_value(s, skip_space(s, i))
        i = skip_space(s, i)
        i <= ncodeunits(s) && codeunit(s, i) == UInt8('}') && return out, i + 1
        i = expect_byte(s, i, ',')
    end
end

function parse_array(s::String, i::Int)
    out = Any[]
    i = skip_space(s, i + 1)
    if i <= ncodeunits(s) && codeunit(s, i) == UInt8(']')
        return out, i + 1
    end
    while true
        value, i = parse_value(s, skip_space(s, i))
        push!(out, value)
        i = skip_space(s, i)
        i <= ncodeunits(s) && codeunit(s, i) == UInt8(']') && return out, i + 1
        i = expect_byte(s, i, ',')
    end
end

function parse_string(s::String, i::Int)
    i = expect_byte(s, i, '"')
    out = IOBuffer()
    n = ncodeunits(s)
    while i <= n
        b = codeunit(s, i)
        if b == UInt8('"')
            return String(take!(out)), i + 1
        elseif b == UInt8('\\')
            i + 1 <= n || break
            e = Char(codeunit(s, i + 1))
            if e == 'u'
                u, i = parse_hex4(s, i + 2)
                if 0xd800 <= u <= 0xdbff  # UTF-16 surrogate pair: \uD83D\uDE00
                    (i + 1 <= n && codeunit(s, i) == UInt8('\\') && codeunit(s, i + 1) == UInt8('u')) ||
                        json_error(s, i, "unpaired surrogate in string")
                    lo, i = parse_hex4(s, i + 2)
                    0xdc00 <= lo <= 0xdfff || json_error(s, i, "invalid low surrogate in string")
                    u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00)
                end
                print(out, Char(u))
                continue
            end
            i += 2
            k = findfirst(==(e), "\"\\/bfnrt")
            k === nothing && json_error(s, i - 1, "invalid escape '\\$e'")
            write(out, "\"\\/\b\f\n\r\t"[k])
        elseif b < 0x20
            json_error(s, i, "control character in string")
        else
            write(out, b)
            i += 1
        end
    end
    json_error(s, i, "unterminated string")
end

function parse_hex4(s::String, i::Int)
    i + 3 <= ncodeunits(s) || json_error(s, i, "truncated \\u escape")
    u = tryparse(UInt32, s[i:i + 3]; base = 16)
    u === nothing && json_error(s, i, "invalid \\u escape")
    return u, i + 4
end

function parse_number(s::String, i::Int)
    j = i
    while j <= ncodeunits(s) && Char(codeunit(s, j)) in "+-0123456789.eE"
        j += 1
    end
    text = s[i:j - 1]
    occursin(JSON_NUMBER, text) || json_error(s, i, "invalid value")
    value = any(in(".eE"), text) ? parse(Float64, text) : parse(Int, text)
    return value, j
end

"""
    write_json(io, value; indent = 2)

Pretty-prints like Python's `json.dumps(value, indent=2)`. NamedTuples keep their
field order (measurements); Dicts are written with sorted keys, so output is reproducible.
Floats are written as Float64 (exact for Float32 values).
"""
function write_json(io::IO, value; indent::Int = 2)
    write_value(io, value, indent, 0)
    return nothing
end

json_string(value; indent::Int = 2) = sprint(io -> write_json(io, value; indent = indent))

"Write `value` as JSON to `path` through a temporary file, so readers never see half a file."
function write_json_atomic(path::AbstractString, value)
    mkpath(dirname(abspath(path)))
    tmp = path * ".tmp"
    open(io -> (write_json(io, value); write(io, '\n')), tmp, "w")
    mv(tmp, path; force = true)
    return path
end

write_value(io::IO, ::Nothing, ::Int, ::Int) = print(io, "null")
write_value(io::IO, x::Bool, ::Int, ::Int) = print(io, x ? "true" : "false")
write_value(io::IO, x::Integer, ::Int, ::Int) = print(io, x)
write_value(io::IO, x::AbstractString, ::Int, ::Int) = write_string(io, x)
write_value(io::IO, x::Symbol, ::Int, ::Int) = write_string(io, String(x))

function write_value(io::IO, x::AbstractFloat, ::Int, ::Int)
    v = Float64(x)
    print(io, isnan(v) ? "NaN" : isinf(v) ? (v > 0 ? "Infinity" : "-Infinity") : repr(v))
end

write_value(io::IO, x::Union{AbstractVector,Tuple}, indent::Int, level::Int) =
    write_container(io, '[', ']', x, indent, level) do item
        write_value(io, item, indent, level + 1)
    end

write_value(io::IO, x::NamedTuple, indent::Int, level::Int) =
    write_members(io, collect(zip(map(String, keys(x)), values(x))), indent, level)

write_value(io::IO, x::AbstractDict, indent::Int, level::Int) =
    write_members(io, sort!([(string(k), v) for (k, v) in x]; by = first), indent, level)

write_members(io::IO, members, indent::Int, level::Int) =
    write_container(io, '{', '}', members, indent, level) do (key, value)
        write_string(io, key)
        print(io, ": ")
        write_value(io, value, indent, level + 1)
    end

function write_container(write_item, io::IO, open::Char, close::Char, items, indent::Int, level::Int)
    print(io, open)
    if !isempty(items)
        for (k, item) in enumerate(items)
            k > 1 && print(io, ',')
            print(io, '\n', ' '^(indent * (level + 1)))
            write_item(item)
        end
        print(io, '\n', ' '^(indent * level))
    end
    print(io, close)
end

function write_string(io::IO, s::AbstractString)
    print(io, '"')
    for c in s
        if c == '"' || c == '\\'
            print(io, '\\', c)
        elseif c == '\n'
            print(io, "\\n")
        elseif c == '\t'
            print(io, "\\t")
        elseif c == '\r'
            print(io, "\\r")
        elseif c < ' '
            print(io, "\\u", string(UInt32(c); base = 16, pad = 4))
        else
            print(io, c)
        end
    end
    print(io, '"')
end
