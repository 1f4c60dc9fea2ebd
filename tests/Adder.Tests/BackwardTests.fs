module Adder.Tests.BackwardTests

open Xunit
