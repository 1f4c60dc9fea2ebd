module Adder.Tests.DataTests

open Xunit
