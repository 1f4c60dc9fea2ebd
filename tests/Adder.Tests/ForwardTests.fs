module Adder.Tests.ForwardTests
