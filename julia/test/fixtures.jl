# Test fixtures shared by the Julia suites (this folder's runtests.jl and each stack's):
# weights bundles written with the library's writer, and the language-neutral schemas
# (schemas/) the tests check documents against.
# Twins: tests/conftest.py, r/tests/testthat/helper-fixtures.R

using DLRosetta

const SCHEMAS = normpath(joinpath(@__DIR__, "..", "..", "schemas"))

"A schema of schemas/ (e.g. \"measurements\"), parsed."
read_schema(name::AbstractString) = read_json(joinpath(SCHEMAS, "$name.schema.json"))

"The initial-weights bundle of `weights` (as `initial_weights` draws them) for `spec`."
write_weights(dir::AbstractString, spec::ModelSpec, weights) =
    write_bundle(dir, "weights", [p.name => weights[p.name] for p in spec.params], Dict{String,Any}())

"The shards bundle of a data set's four splits (as python/dlrosetta/shards.py writes it, without meta)."
write_shards(dir::AbstractString, x_train::Array, y_train::Vector{Int32}, x_test::Array, y_test::Vector{Int32}) =
    write_bundle(dir, "shards", ("x_train" => x_train, "y_train" => y_train, "x_test" => x_test, "y_test" => y_test),
                 Dict{String,Any}())
